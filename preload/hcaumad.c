/*
 * The umad preload: what the kernel's ib_umad module and MAD layer give libibumad, for
 * every libibumad program `hcasim exec` runs (OpenSM, osmtest, infiniband-diags, mstflint
 * lid-N), over the ibsim 0.10 socket protocol the lab daemon speaks (docs/fabric.md §10).
 *
 * Debian's libumad2sim 0.10 speaks the same protocol but cuts every MAD it receives to
 * 224 bytes, every MAD it sends to 256, does no RMPP and ignores timeout_ms; this library
 * follows the kernel instead (Linux drivers/infiniband/core/user_mad.c, mad.c,
 * mad_rmpp.c; rdma-core libibumad/umad.c, docs/sources.md §21):
 *
 * - sysfs: /sys/class/infiniband/<dev>/..., /sys/class/infiniband_mad/{abi_version,
 *   umad0/, issm0/} are files in a private directory under $TMPDIR, rewritten from the
 *   daemon (GET_PORTINFO, GET_PKEYS) each time a program opens one of them, so LID, SM
 *   LID and port state are live; the directory is removed when the process exits (or by
 *   the next process to attach, when it was killed).
 * - /dev/infiniband/umad0 is a real file descriptor (an eventfd counting queued MADs), so
 *   poll, select and epoll work on it natively; read() and write() on it are the
 *   kernel's: struct ib_user_mad with the P_Key index header (abi 5), full 256-byte MADs,
 *   EINVAL for a buffer shorter than the first segment, ENOSPC (first segment copied,
 *   message kept) for a buffer shorter than a reassembled RMPP message, EAGAIN on an empty
 *   queue with O_NONBLOCK.
 * - Agents: IB_USER_MAD_REGISTER_AGENT / _AGENT2 / UNREGISTER_AGENT / ENABLE_PKEY, 32 per
 *   file; unsolicited requests go to the agent registered for their class, class version
 *   and method; responses to the agent whose id is in TID bits 32-47 (the kernel's hi_tid;
 *   the daemon owns bits 48-63), and only when they answer a send still outstanding.
 * - Sends with timeout_ms wait for their response; a send not answered after timeout_ms
 *   is sent again, `retries` times, then comes back from read() with status ETIMEDOUT and
 *   the MAD header only, as send_handler() queues it.  A request the lab bounces (status
 *   110 on the datagram: no route, no one to answer) ends the same way at once.
 * - RMPP (mad_rmpp.c) for agents registered with an RMPP version in the RMPP classes:
 *   a message longer than one MAD is cut into segments (class header repeated, FIRST/LAST
 *   flags, PayloadLength), sent in the window the receiver's ACKs open; received segments
 *   are ACKed and reassembled before the program sees the message.
 * - /dev/infiniband/issm0: opening it sets the port's IsSM bit (SET_ISSM), closing clears it.
 *
 * Nothing here prints: a MAD may carry an M_Key or a vendor key.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <endian.h>
#include <rdma/ib_user_mad.h>

#define EXPORT __attribute__((visibility("default")))

/* ---------------------------------------------------------------- protocol constants */
/* ibsim 0.10 include/ibsim.h: struct sim_ctl (80 bytes) and struct sim_request (288). */
#define SIM_MAGIC 0xdeadbeefu
#define CTL_SIZE 80
#define CTL_DATA 64
#define REQ_SIZE 288
#define MAD_SIZE 256
enum { CTL_ERROR = 0, CTL_CONNECT = 1, CTL_DISCONNECT = 2, CTL_GET_VENDOR = 4,
       CTL_GET_NODEINFO = 7, CTL_GET_PORTINFO = 8, CTL_SET_ISSM = 9, CTL_GET_PKEYS = 10 };

/* struct ib_user_mad_hdr with and without the P_Key index (user_mad.c hdr_size()). */
#define HDR_SIZE 64
#define OLD_HDR_SIZE 56
#define MAX_AGENTS 32 /* IB_UMAD_MAX_AGENTS */
#define MAX_FILES 64
/* Messages one file may hold unread before more are dropped. */
#define MAX_QUEUED 4096
/* The largest reassembled RMPP message taken (an SA table of a large fabric fits). */
#define MAX_RMPP (16u << 20)

/* MAD header fields (IBTA 13.4.3) and the RMPP header after it (13.6.2). */
#define MAD_CLASS 1
#define MAD_VERSION 2
#define MAD_METHOD 3
#define MAD_STATUS 4
#define MAD_TID 8
#define MAD_HDR 24
#define RMPP_VERSION 24
#define RMPP_TYPE 25
#define RMPP_FLAGS 26
#define RMPP_SEG 28
#define RMPP_PAYLEN 32
#define RMPP_HDR 36
#define RMPP_DATA (MAD_SIZE - RMPP_HDR)
#define RMPP_ACTIVE 1
#define RMPP_FIRST 2
#define RMPP_LAST 4
enum { RMPP_T_DATA = 1, RMPP_T_ACK = 2, RMPP_T_STOP = 3, RMPP_T_ABORT = 4 };
/* Segments a receiver lets in before its next ACK (mad_rmpp.c window_size()). */
#define RMPP_WINDOW 32
/* How long a sender waits for an ACK when the program gave no timeout (a response). */
#define RMPP_ACK_MS 200
#define RMPP_ACK_RETRIES 3
/*
 * How much later than timeout_ms a send times out. The kernel starts the timer when the
 * send completes and runs it on jiffies and a workqueue (mad.c wait_for_response(),
 * timeout_sends()), so it fires after a poll() of the same length the program starts
 * once write() returns: libibmad's _do_madrpc() waits exactly its send's timeout and, on
 * hardware, sees its own poll time out first ("recv failed: Connection timed out").
 */
#define TIMER_SLACK_MS 50
/* A reassembly nobody continues is forgotten after this long. */
#define RMPP_STALE_MS 40000

#define METHOD_GET 0x01
#define METHOD_SET 0x02
#define METHOD_GET_RESP 0x81
#define METHOD_TRAP_REPRESS 0x07
#define METHOD_RESP 0x80
#define CLASS_SUBN_LID 0x01
#define CLASS_SUBN_DR 0x81
#define CLASS_SA 0x03
#define CLASS_BM 0x05
#define CLASS_DEV_MGT 0x06
#define CLASS_DEV_ADM 0x10
#define CLASS_BIS 0x12

/* ---------------------------------------------------------------- state */
struct packet {
	struct packet *next;
	size_t mad_len; /* MAD bytes after the header */
	bool send;      /* a timed-out send (copy_send_mad), not a received MAD */
	uint8_t data[]; /* HDR_SIZE header, then mad_len bytes */
};

struct agent {
	bool used;
	uint16_t hi_tid;
	uint8_t qpn, mgmt_class, version, rmpp_version;
	uint8_t oui[3];
	uint64_t mask[2];
};

struct ufile {
	bool used;
	bool issm;
	bool pkey; /* ENABLE_PKEY: 64-byte header */
	int fd;
	unsigned gen;
	struct agent agents[MAX_AGENTS];
	struct packet *head, *tail;
	size_t queued;
};

/* One outstanding send: waiting for its response, or for RMPP ACKs. */
struct send {
	struct send *next;
	int file;
	unsigned gen;
	int agent;
	uint64_t tid; /* bits 0-47 */
	uint8_t cls;
	bool request;    /* waits for a response (timeout_ms > 0) */
	uint32_t timeout_ms;
	uint32_t retries_left;
	uint64_t deadline;
	uint8_t hdr[HDR_SIZE];
	uint16_t dlid; /* network order */
	uint32_t dqp;  /* network order */
	uint32_t sqp;
	/* the MADs: one, or seg_count RMPP segments */
	uint8_t *mads;
	int seg_count;
	bool rmpp;
	int last_ack, sent, newwin;
	bool rmpp_done;
};

/* One RMPP message being received. */
struct reasm {
	struct reasm *next;
	int file;
	unsigned gen;
	int agent;
	uint64_t tid;
	uint8_t cls;
	uint16_t slid;
	uint32_t sqp;
	int hdr_len;
	uint8_t *buf;
	size_t len, cap;
	int seg;    /* last segment taken */
	int newwin; /* last segment before the next ACK */
	uint64_t touched;
};

/* Adaptive: a thread finding it held spins briefly before sleeping in the kernel. The
 * receiver thread holds it for microseconds at a time, and the program's reader, woken by
 * the very message the receiver is still queueing, would otherwise sleep and be woken
 * again for it: two futex calls per MAD. */
static pthread_mutex_t mu = PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP;
static pthread_mutex_t ctl_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ufile files[MAX_FILES];
static unsigned file_gen;
static struct send *sends;
static struct reasm *reasms;
static uint16_t next_hi_tid;
/* When the receiver thread's poll() ends by itself (the earliest deadline it knew of, ms of
 * now_ms()); a send due later needs no wake-up, which spares a thread switch per MAD on a
 * busy agent such as an SM (most sends are due after one already pending). Lock held. */
static uint64_t receiver_wakes_at;
/*
 * Who reads the lab's socket. A program thread waiting in poll() on one umad file alone
 * (libibumad's umad_recv(): OpenSM's receiver thread, every libibmad tool) reads it itself
 * while it waits (lead_poll()): a MAD from the lab then wakes that thread only, where a
 * hand-off through the receiver thread woke two, one after the other, for every MAD. The
 * receiver thread keeps the socket while nobody leads, and steps aside while one does and
 * datagrams are flowing (rx_at within LEAD_MS); it looks again every LEAD_MS, so a leader
 * that left and did not come back leaves the socket unread for at most that long. When no
 * datagram has come for LEAD_MS both wait on the socket: a wasted wake-up is free when idle.
 */
#define LEAD_MS 4
static int leader;     /* 1 while a program thread is in lead_poll(); atomic */
static uint64_t rx_at; /* when a datagram was last handled (ms); atomic */

/* A deadline moved by an RMPP ACK (on the receiver thread or a leader's): the receiver
 * looks at its timers again before it next sleeps. An ACK only ever moves a deadline
 * later, so a leader need not wake the receiver for it. Lock held. */
static bool timers_moved;
/* Which fds below FD_FAST are umad or issm files: read(), write(), close() and ioctl() on
 * any other fd (a program's log, its sockets) go straight to libc without taking the lock
 * (an SM writes and reads other fds all the time, and contending for the lock with the
 * receiver thread cost it futex calls per MAD). Written under the lock, read without. */
#define FD_FAST 65536
static unsigned char fd_ours[FD_FAST];

static int init_state; /* 0 not tried, 1 ready, -1 failed or gone */
static bool hooked;    /* the exit and fork handlers are installed */
static pid_t owner;
static int ctl_fd = -1, data_fd = -1, wake_fd = -1;
static uint32_t client_id;
static char root[1024];
static char dev_name[32] = "ibsim0";
static unsigned port_num = 1;
static uint8_t node_info[CTL_DATA];
/*
 * The port's PortInfo and P_Keys as last read from the daemon, and when (ms). A program
 * opening a file of the port gets them fresh, except within SNAPSHOT_MS of the last read:
 * libibumad's get_port() opens some 40 files one after another, and they see one moment.
 */
#define SNAPSHOT_MS 20
static uint8_t port_info[CTL_DATA], pkey_table[CTL_DATA];
static uint64_t port_info_at, pkeys_at;
/* What the port's files hold now. */
static uint8_t written_port_info[CTL_DATA], written_pkeys[CTL_DATA];
static bool written_pi, written_pk;

/* ---------------------------------------------------------------- real functions */
static void lock_mu(void);
static void unlock_mu(void);

static void mark_fd(int fd, bool ours)
{
	if (fd >= 0 && fd < FD_FAST)
		__atomic_store_n(&fd_ours[fd], ours, __ATOMIC_RELEASE);
}

/* False only for an fd that is certainly none of ours. */
static bool maybe_ours(int fd)
{
	return fd >= FD_FAST || (fd >= 0 && __atomic_load_n(&fd_ours[fd], __ATOMIC_ACQUIRE));
}

static void *next_symbol(const char *name)
{
	return dlsym(RTLD_NEXT, name);
}

#define REAL(ret, name, ...)                                      \
	static ret (*real_##name)(__VA_ARGS__);                    \
	if (!real_##name)                                          \
		real_##name = (ret(*)(__VA_ARGS__))next_symbol(#name)

static ssize_t sys_read(int fd, void *buf, size_t n)
{
	REAL(ssize_t, read, int, void *, size_t);
	return real_read(fd, buf, n);
}

static ssize_t sys_write(int fd, const void *buf, size_t n)
{
	REAL(ssize_t, write, int, const void *, size_t);
	return real_write(fd, buf, n);
}

static int sys_poll(struct pollfd *fds, nfds_t n, int timeout)
{
	REAL(int, poll, struct pollfd *, nfds_t, int);
	return real_poll(fds, n, timeout);
}

static int sys_close(int fd)
{
	REAL(int, close, int);
	return real_close(fd);
}

static FILE *sys_fopen(const char *path, const char *mode)
{
	REAL(FILE *, fopen, const char *, const char *);
	return real_fopen(path, mode);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return be64toh(v);
}

static void put_be64(uint8_t *p, uint64_t v)
{
	v = htobe64(v);
	memcpy(p, &v, 8);
}

static uint32_t get_be32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return be32toh(v);
}

static void put_be32(uint8_t *p, uint32_t v)
{
	v = htobe32(v);
	memcpy(p, &v, 4);
}

/* ---------------------------------------------------------------- MAD class rules */
/* ib_response_mad() (mad.c). */
static bool is_response(const uint8_t *mad)
{
	return (mad[MAD_METHOD] & METHOD_RESP) || mad[MAD_METHOD] == METHOD_TRAP_REPRESS ||
	       (mad[MAD_CLASS] == CLASS_BM && (get_be32(mad + 20) & 0x00000001));
}

/* ib_is_mad_class_rmpp() and ib_get_mad_data_offset() (mad.c). */
static bool rmpp_class(uint8_t cls)
{
	return cls == CLASS_SA || cls == CLASS_DEV_MGT || cls == CLASS_DEV_ADM || cls == CLASS_BIS ||
	       (cls >= 0x30 && cls <= 0x4f);
}

static int data_offset(uint8_t cls)
{
	if (cls == CLASS_SA)
		return 56;
	if (cls == CLASS_DEV_MGT || cls == CLASS_DEV_ADM || cls == CLASS_BIS)
		return 64;
	if (cls >= 0x30 && cls <= 0x4f)
		return 40;
	return MAD_HDR;
}

static bool vendor_class(uint8_t cls)
{
	return (cls >= 0x09 && cls <= 0x0f) || (cls >= 0x30 && cls <= 0x4f);
}

static size_t hdr_size(const struct ufile *f)
{
	return f->pkey ? HDR_SIZE : OLD_HDR_SIZE;
}

/* ---------------------------------------------------------------- control channel */
static void abstract_addr(struct sockaddr_un *a, socklen_t *len, const char *name)
{
	size_t n = strlen(name);

	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	if (n > sizeof(a->sun_path) - 2)
		n = sizeof(a->sun_path) - 2;
	memcpy(a->sun_path + 1, name, n);
	/* the trailing NUL is part of the name, as ibsim makes it */
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n + 1);
}

static const char *sockbase(void)
{
	const char *b = getenv("IBSIM_SOCKNAME");

	return b && *b ? b : "sim";
}

/* One control round trip; the reply's data into out (CTL_DATA bytes). 0 or an errno. */
static int ctl_call(uint32_t type, const void *arg, size_t arg_len, void *out)
{
	uint8_t msg[CTL_SIZE], reply[CTL_SIZE];
	uint32_t v;
	ssize_t n;
	int err = 0, cancel_state;

	memset(msg, 0, sizeof(msg));
	v = SIM_MAGIC;
	memcpy(msg, &v, 4);
	memcpy(msg + 4, &client_id, 4);
	memcpy(msg + 8, &type, 4);
	v = (uint32_t)arg_len;
	memcpy(msg + 12, &v, 4);
	if (arg_len)
		memcpy(msg + 16, arg, arg_len > CTL_DATA ? CTL_DATA : arg_len);
	/* not cancelled with ctl_mu held (see lock_mu()) */
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
	pthread_mutex_lock(&ctl_mu);
	if (send(ctl_fd, msg, sizeof(msg), 0) != (ssize_t)sizeof(msg)) {
		err = errno ? errno : EIO;
	} else {
		struct pollfd p = { .fd = ctl_fd, .events = POLLIN };

		/* the daemon answers at once; a silent one is gone */
		if (poll(&p, 1, 10000) != 1)
			err = ETIMEDOUT;
		else if ((n = recv(ctl_fd, reply, sizeof(reply), 0)) != (ssize_t)sizeof(reply))
			err = EIO;
		else {
			memcpy(&v, reply + 8, 4);
			if (v == CTL_ERROR && type != CTL_ERROR)
				err = EPERM;
			else if (out)
				memcpy(out, reply + 16, CTL_DATA);
		}
	}
	pthread_mutex_unlock(&ctl_mu);
	pthread_setcancelstate(cancel_state, NULL);
	return err;
}

/* ---------------------------------------------------------------- sysfs */
static int write_file(const char *dir, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int write_file(const char *dir, const char *name, const char *fmt, ...)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	va_list ap;
	FILE *f;
	int ok;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path) ||
	    (size_t)snprintf(tmp, sizeof(tmp), "%s/.%s.new", dir, name) >= sizeof(tmp))
		return -1;
	f = sys_fopen(tmp, "w");
	if (!f)
		return -1;
	va_start(ap, fmt);
	ok = vfprintf(f, fmt, ap) >= 0;
	va_end(ap);
	ok = fclose(f) == 0 && ok;
	/* a reader never sees a half-written file */
	return ok && rename(tmp, path) == 0 ? 0 : -1;
}

static int make_dirs(const char *path)
{
	char buf[PATH_MAX];
	size_t i, n = strlen(path);

	if (n >= sizeof(buf))
		return -1;
	memcpy(buf, path, n + 1);
	for (i = 1; i <= n; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, 0700) && errno != EEXIST)
			return -1;
		buf[i] = path[i];
	}
	return 0;
}

static const char *port_state_name(unsigned s)
{
	static const char *const names[] = { "NOP", "DOWN", "INIT", "ARMED", "ACTIVE", "ACTIVE_DEFER" };

	return s < 6 ? names[s] : "UNKNOWN";
}

static const char *phys_state_name(unsigned s)
{
	static const char *const names[] = { "<unknown>", "Sleep", "Polling", "Disabled",
					     "PortConfigurationTraining", "LinkUp",
					     "LinkErrorRecovery", "Phy Test" };

	return s < 8 ? names[s] : "<unknown>";
}

/*
 * The port's files (sysfs.c / rate_show() forms) from a fresh PortInfo and P_Key table.
 * `only` names the file a program is opening (relative to ports/<n>): then only the
 * PortInfo or the P_Key files are brought up to date, and only when the daemon's answer
 * differs from what they hold; NULL writes them all.
 */
static int write_port(const char *only)
{
	uint8_t pi[CTL_DATA], pk[CTL_DATA], arg = 0;
	char dir[2048], sub[PATH_MAX], name[16];
	unsigned width, speed, lanes, gbps10, state, phys, i;
	const char *sp = "";
	uint64_t guid;
	int bad = 0;
	bool pkeys = !only || !strncmp(only, "pkeys/", 6);
	uint64_t now = now_ms();

	if ((!pkeys || !only) && (!port_info_at || now - port_info_at > SNAPSHOT_MS)) {
		if (ctl_call(CTL_GET_PORTINFO, &arg, 1, port_info))
			return -1;
		port_info_at = now;
	}
	if (pkeys && (!pkeys_at || now - pkeys_at > SNAPSHOT_MS)) {
		if (ctl_call(CTL_GET_PKEYS, NULL, 0, pkey_table))
			return -1;
		pkeys_at = now;
	}
	memcpy(pi, port_info, sizeof(pi));
	memcpy(pk, pkey_table, sizeof(pk));
	if (only && !pkeys && written_pi && !memcmp(pi, written_port_info, sizeof(pi)))
		return 0;
	if (only && pkeys && written_pk && !memcmp(pk, written_pkeys, sizeof(pk)))
		return 0;
	snprintf(dir, sizeof(dir), "%s/sys/class/infiniband/%s/ports/%u", root, dev_name, port_num);
	if (!only && make_dirs(dir))
		return -1;
	if (!only || !pkeys) {
		memcpy(written_port_info, pi, sizeof(pi));
		written_pi = true;
		state = pi[32] & 0xf;
		phys = pi[33] >> 4;
		width = pi[31];
		speed = pi[35] >> 4;
		lanes = width == 1 ? 1 : width == 2 ? 4 : width == 4 ? 8 : width == 8 ? 12 : width == 16 ? 2 : 0;
		/* tenths of Gb/s per lane: SDR 2.5, DDR 5, QDR 10 */
		gbps10 = speed == 1 ? 25 : speed == 2 ? 50 : speed == 4 ? 100 : 25;
		sp = speed == 2 ? " DDR" : speed == 4 ? " QDR" : "";
		bad |= write_file(dir, "lid", "0x%x\n", (unsigned)(pi[16] << 8 | pi[17]));
		bad |= write_file(dir, "sm_lid", "0x%x\n", (unsigned)(pi[18] << 8 | pi[19]));
		bad |= write_file(dir, "sm_sl", "%u\n", (unsigned)(pi[36] & 0xf));
		bad |= write_file(dir, "lid_mask_count", "%u\n", (unsigned)(pi[34] & 7));
		bad |= write_file(dir, "state", "%u: %s\n", state, port_state_name(state));
		bad |= write_file(dir, "phys_state", "%u: %s\n", phys, phys_state_name(phys));
		bad |= write_file(dir, "cap_mask", "0x%08x\n", get_be32(pi + 20));
		bad |= write_file(dir, "link_layer", "InfiniBand\n");
		if (gbps10 * lanes % 10)
			bad |= write_file(dir, "rate", "%u.%u Gb/sec (%uX%s)\n", gbps10 * lanes / 10,
					  gbps10 * lanes % 10, lanes, sp);
		else
			bad |= write_file(dir, "rate", "%u Gb/sec (%uX%s)\n", gbps10 * lanes / 10,
					  lanes, sp);
		/* GID 0: the subnet prefix and the port GUID (a CA port's is node GUID + port) */
		guid = get_be64(node_info + 12) + (node_info[2] == 2 ? 0 : port_num);
		snprintf(sub, sizeof(sub), "%s/gids", dir);
		bad |= make_dirs(sub) ||
		       write_file(sub, "0", "%04x:%04x:%04x:%04x:%04x:%04x:%04x:%04x\n",
				  (unsigned)(pi[8] << 8 | pi[9]), (unsigned)(pi[10] << 8 | pi[11]),
				  (unsigned)(pi[12] << 8 | pi[13]), (unsigned)(pi[14] << 8 | pi[15]),
				  (unsigned)(guid >> 48 & 0xffff), (unsigned)(guid >> 32 & 0xffff),
				  (unsigned)(guid >> 16 & 0xffff), (unsigned)(guid & 0xffff));
	}
	if (pkeys) {
		memcpy(written_pkeys, pk, sizeof(pk));
		written_pk = true;
		snprintf(sub, sizeof(sub), "%s/pkeys", dir);
		if (!only && make_dirs(sub))
			return -1;
		for (i = 0; i < 32; i++) {
			snprintf(name, sizeof(name), "%u", i);
			bad |= write_file(sub, name, "0x%04x\n",
					  (unsigned)(pk[2 * i] << 8 | pk[2 * i + 1]));
		}
	}
	return bad ? -1 : 0;
}

static int write_tree(void)
{
	uint8_t vendor[CTL_DATA];
	char dir[2048];
	uint32_t part, hw;
	uint64_t fw, g;

	if (ctl_call(CTL_GET_VENDOR, NULL, 0, vendor) ||
	    ctl_call(CTL_GET_NODEINFO, NULL, 0, node_info))
		return -1;
	memcpy(&part, vendor + 4, 4);
	memcpy(&hw, vendor + 8, 4);
	memcpy(&fw, vendor + 16, 8);
	/* the name the kernel's driver gives the device: mlx4 for ConnectX-3 (Pro), mlx5 after */
	if (node_info[2] == 1 && (part == 4099 || part == 4100 || part == 4103))
		snprintf(dev_name, sizeof(dev_name), "mlx4_0");
	else if (node_info[2] == 1 && part >= 4113 && part < 4200)
		snprintf(dev_name, sizeof(dev_name), "mlx5_0");
	port_num = node_info[2] == 2 ? 0 : (node_info[36] ? node_info[36] : 1);

	snprintf(dir, sizeof(dir), "%s/sys/class/infiniband_mad", root);
	if (make_dirs(dir) || write_file(dir, "abi_version", "%d\n", IB_USER_MAD_ABI_VERSION))
		return -1;
	snprintf(dir, sizeof(dir), "%s/sys/class/infiniband_mad/umad0", root);
	if (make_dirs(dir) || write_file(dir, "ibdev", "%s\n", dev_name) ||
	    write_file(dir, "port", "%u\n", port_num))
		return -1;
	snprintf(dir, sizeof(dir), "%s/sys/class/infiniband_mad/issm0", root);
	if (make_dirs(dir) || write_file(dir, "ibdev", "%s\n", dev_name) ||
	    write_file(dir, "port", "%u\n", port_num))
		return -1;
	snprintf(dir, sizeof(dir), "%s/dev/infiniband", root);
	if (make_dirs(dir) || write_file(dir, "umad0", "%s", "") || write_file(dir, "issm0", "%s", ""))
		return -1;
	snprintf(dir, sizeof(dir), "%s/sys/class/infiniband/%s", root, dev_name);
	if (make_dirs(dir))
		return -1;
	g = get_be64(node_info + 12);
	if (write_file(dir, "node_type", "%u: %s\n", node_info[2],
		       node_info[2] == 2 ? "switch" : node_info[2] == 3 ? "router" : "CA") ||
	    write_file(dir, "fw_ver", "%llx\n", (unsigned long long)fw) ||
	    write_file(dir, "hw_rev", "%x\n", hw) ||
	    write_file(dir, "hca_type", "MT%u\n", part) ||
	    write_file(dir, "node_guid", "%04x:%04x:%04x:%04x\n", (unsigned)(g >> 48 & 0xffff),
		       (unsigned)(g >> 32 & 0xffff), (unsigned)(g >> 16 & 0xffff),
		       (unsigned)(g & 0xffff)))
		return -1;
	g = get_be64(node_info + 4);
	if (write_file(dir, "sys_image_guid", "%04x:%04x:%04x:%04x\n", (unsigned)(g >> 48 & 0xffff),
		       (unsigned)(g >> 32 & 0xffff), (unsigned)(g >> 16 & 0xffff),
		       (unsigned)(g & 0xffff)))
		return -1;
	return write_port(NULL);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static void cleanup(void)
{
	if (getpid() != owner || init_state != 1)
		return; /* a forked child leaves its parent's tree alone */
	init_state = -1;
	if (root[0])
		nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	if (ctl_fd >= 0)
		ctl_call(CTL_DISCONNECT, NULL, 0, NULL);
}

/*
 * Remove the trees of processes that are gone without cleaning up (killed, or ended with
 * _exit): hcaumad-<pid>-XXXXXX of this user whose pid no longer exists.
 */
static void sweep(const char *dir)
{
	REAL(DIR *, opendir, const char *);
	char path[1024];
	struct dirent *e;
	struct stat st;
	DIR *d = real_opendir(dir);
	long pid;
	char *end;

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, "hcaumad-", 8))
			continue;
		pid = strtol(e->d_name + 8, &end, 10);
		if (pid <= 0 || *end != '-' || !kill((pid_t)pid, 0) || errno != ESRCH)
			continue; /* alive (or not ours to judge) */
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= sizeof(path) ||
		    lstat(path, &st) || !S_ISDIR(st.st_mode) || st.st_uid != geteuid())
			continue;
		nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	}
	closedir(d);
}

/* ---------------------------------------------------------------- data path */
static void *receiver(void *arg);

/*
 * In a forked child: the parent's attachment, sysfs tree and umad files stay the parent's
 * (the child has no receiver thread); the child attaches anew when it looks at a path.
 */
static void forked(void)
{
	int i;

	mu = (pthread_mutex_t)PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP;
	pthread_mutex_init(&ctl_mu, NULL);
	for (i = 0; i < MAX_FILES; i++) {
		if (files[i].used)
			mark_fd(files[i].fd, false);
		files[i].used = false; /* their fds are plain eventfds in the child */
	}
	sends = NULL;
	reasms = NULL;
	leader = 0;
	if (ctl_fd >= 0)
		sys_close(ctl_fd);
	if (data_fd >= 0)
		sys_close(data_fd);
	if (wake_fd >= 0)
		sys_close(wake_fd);
	ctl_fd = data_fd = wake_fd = -1;
	root[0] = '\0';
	init_state = 0;
}

/* Attach to the lab: control socket, data socket, CONNECT, the sysfs tree. Lock held. */
static int attach(void)
{
	struct sockaddr_un a;
	socklen_t alen;
	char name[128];
	uint8_t info[CTL_DATA];
	const char *host = getenv("SIM_HOST");
	const char *tmp = getenv("TMPDIR");
	pthread_t thread;
	uint32_t v;

	owner = getpid();
	ctl_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	data_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ctl_fd < 0 || data_fd < 0 || wake_fd < 0)
		return -1;
	snprintf(name, sizeof(name), "%s:ctl%d", sockbase(), (int)owner);
	abstract_addr(&a, &alen, name);
	if (bind(ctl_fd, (struct sockaddr *)&a, alen))
		return -1;
	snprintf(name, sizeof(name), "%s:ctl", sockbase());
	abstract_addr(&a, &alen, name);
	if (connect(ctl_fd, (struct sockaddr *)&a, alen))
		return -1;
	snprintf(name, sizeof(name), "%s:in%d", sockbase(), (int)owner);
	abstract_addr(&a, &alen, name);
	if (bind(data_fd, (struct sockaddr *)&a, alen))
		return -1;
	/* CONNECT: sim_client_info {id = pid, qp, issm, nodeid[32]}, from this very pid */
	memset(info, 0, sizeof(info));
	v = (uint32_t)owner;
	memcpy(info, &v, 4);
	if (host)
		snprintf((char *)info + 12, 32, "%s", host);
	if (ctl_call(CTL_CONNECT, info, 44, info))
		return -1;
	memcpy(&client_id, info, 4);
	snprintf(name, sizeof(name), "%s:out%u", sockbase(), client_id);
	abstract_addr(&a, &alen, name);
	if (connect(data_fd, (struct sockaddr *)&a, alen))
		return -1;
	sweep(tmp && *tmp ? tmp : "/tmp");
	if ((size_t)snprintf(root, sizeof(root), "%s/hcaumad-%d-XXXXXX", tmp && *tmp ? tmp : "/tmp",
			     (int)owner) >= sizeof(root) ||
	    !mkdtemp(root)) {
		root[0] = '\0';
		return -1;
	}
	if (!hooked) {
		hooked = true;
		atexit(cleanup);
		pthread_atfork(NULL, NULL, forked);
	}
	if (write_tree())
		return -1;
	if (pthread_create(&thread, NULL, receiver, NULL))
		return -1;
	pthread_detach(thread);
	return 0;
}

static bool ready(void)
{
	int saved = errno;

	lock_mu();
	if (init_state == 0)
		init_state = attach() ? -1 : 1;
	unlock_mu();
	errno = saved;
	return init_state == 1;
}

/* One datagram to the lab; mad is MAD_SIZE bytes. Lock held. */
/* Datagrams a thread made while holding the lock, sent once it has let go of it
 * (unlock_mu()): a send under the lock kept the program's sending thread and the receiver
 * thread waiting for each other in the kernel. Each thread sends its own, in order. */
#define OUTBOX 16
static __thread uint8_t outbox[OUTBOX][REQ_SIZE];
static __thread int outbox_n;

/*
 * A thread holding the lock cannot be cancelled: recv(), send() and the eventfd's write()
 * are cancellation points, and a program thread cancelled at one with the lock held (OpenSM
 * cancels its receiver thread, which reads the lab's socket while it leads, lead_poll())
 * would leave the lock held for ever. A cancel asked for meanwhile acts at the thread's
 * next cancellation point after unlock_mu().
 */
static __thread int held_cancel_state;

static void lock_mu(void)
{
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &held_cancel_state);
	pthread_mutex_lock(&mu);
}

static void unlock_mu(void)
{
	int i, n = outbox_n;

	pthread_mutex_unlock(&mu);
	outbox_n = 0;
	for (i = 0; i < n; i++)
		if (send(data_fd, outbox[i], REQ_SIZE, MSG_NOSIGNAL) < 0) {
			/* the lab is gone: what was sent times out */
		}
	pthread_setcancelstate(held_cancel_state, NULL);
}

/* Lock held: queued for unlock_mu(), or sent at once when the outbox is full. */
static void send_mad(uint16_t dlid, uint32_t dqp, uint32_t sqp, const uint8_t *mad)
{
	uint8_t spare[REQ_SIZE];
	uint8_t *req = outbox_n < OUTBOX ? outbox[outbox_n++] : spare;
	uint16_t slid;

	memset(req, 0, REQ_SIZE);
	memcpy(req, &dlid, 2);
	/* SLID 0: the lab fills in the port's; the permissive LID for directed route */
	slid = dlid == 0xffff ? 0xffff : 0;
	memcpy(req + 4, &slid, 2);
	memcpy(req + 8, &dqp, 4);
	put_be32(req + 12, sqp);
	put_be64(req + 24, MAD_SIZE);
	memcpy(req + 32, mad, MAD_SIZE);
	if (req == spare && send(data_fd, req, REQ_SIZE, MSG_NOSIGNAL) < 0) {
		/* the lab is gone: what was sent times out */
	}
}

static void wake_receiver(void)
{
	uint64_t one = 1;

	if (sys_write(wake_fd, &one, sizeof(one)) < 0) {
		/* already woken */
	}
}

static struct ufile *file_of(int fd)
{
	int i;

	if (fd < 0)
		return NULL;
	for (i = 0; i < MAX_FILES; i++)
		if (files[i].used && files[i].fd == fd)
			return &files[i];
	return NULL;
}

static struct ufile *file_at(int index, unsigned gen)
{
	return index >= 0 && index < MAX_FILES && files[index].used && files[index].gen == gen
		       ? &files[index]
		       : NULL;
}

/* Queue a message for the program and count it on the fd's eventfd. Lock held. */
static void enqueue(struct ufile *f, struct packet *p)
{
	uint64_t one = 1;

	if (f->queued >= MAX_QUEUED) {
		free(p);
		return;
	}
	p->next = NULL;
	if (f->tail)
		f->tail->next = p;
	else
		f->head = p;
	f->tail = p;
	f->queued++;
	if (sys_write(f->fd, &one, sizeof(one)) < 0) {
		/* the counter is full only after 2^64 - 2 messages */
	}
}

static void fill_recv_hdr(uint8_t *hdr, int agent, size_t hsize, size_t mad_len, uint32_t sqp_be,
			  uint16_t slid_be)
{
	uint32_t v;

	memset(hdr, 0, HDR_SIZE);
	v = (uint32_t)agent;
	memcpy(hdr, &v, 4);
	v = (uint32_t)(hsize + mad_len);
	memcpy(hdr + 16, &v, 4);
	memcpy(hdr + 20, &sqp_be, 4);
	memcpy(hdr + 28, &slid_be, 2);
}

/* Deliver a received message (MAD bytes) to an agent of a file. Lock held. */
static void deliver(struct ufile *f, int agent, const uint8_t *mad, size_t len, uint32_t sqp_be,
		    uint16_t slid_be)
{
	struct packet *p = malloc(sizeof(*p) + HDR_SIZE + len);

	if (!p)
		return;
	p->mad_len = len;
	p->send = false;
	fill_recv_hdr(p->data, agent, hdr_size(f), len, sqp_be, slid_be);
	memcpy(p->data + HDR_SIZE, mad, len);
	enqueue(f, p);
}

static void free_send(struct send *s)
{
	free(s->mads);
	free(s);
}

static void unlink_send(struct send *s)
{
	struct send **pp;

	for (pp = &sends; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			return;
		}
}

/* A send that got no response: back to the program with ETIMEDOUT (send_handler()). */
static void time_out(struct send *s)
{
	struct ufile *f = file_at(s->file, s->gen);
	struct packet *p;
	uint32_t v;

	unlink_send(s);
	if (f && (p = malloc(sizeof(*p) + HDR_SIZE + MAD_HDR))) {
		p->mad_len = MAD_HDR;
		p->send = true;
		memcpy(p->data, s->hdr, HDR_SIZE);
		v = ETIMEDOUT;
		memcpy(p->data + 4, &v, 4);
		memcpy(p->data + HDR_SIZE, s->mads, MAD_HDR);
		enqueue(f, p);
	}
	free_send(s);
}

static void rmpp_send_window(struct send *s)
{
	int limit = s->newwin < s->seg_count ? s->newwin : s->seg_count;

	while (s->sent < limit) {
		send_mad(s->dlid, s->dqp, s->sqp, s->mads + (size_t)s->sent * MAD_SIZE);
		s->sent++;
	}
}

/* Find the outstanding send a received MAD belongs to. Lock held. */
static struct send *find_send(uint64_t tid, uint8_t cls, bool want_rmpp)
{
	struct send *s;

	for (s = sends; s; s = s->next)
		if (s->tid == (tid & 0xffffffffffffull) && s->cls == cls &&
		    (!want_rmpp || (s->rmpp && !s->rmpp_done)))
			return s;
	return NULL;
}

/* An RMPP ACK, STOP or ABORT for one of our segmented sends (mad_rmpp.c process_rmpp_ack). */
static void rmpp_control(const uint8_t *mad)
{
	struct send *s = find_send(get_be64(mad + MAD_TID), mad[MAD_CLASS], true);
	int seg, win;

	if (!s)
		return;
	if (mad[RMPP_TYPE] != RMPP_T_ACK) {
		/* the receiver gave up: the send ends, as a failed send_handler() is silent */
		unlink_send(s);
		free_send(s);
		return;
	}
	seg = (int)get_be32(mad + RMPP_SEG);
	win = (int)get_be32(mad + RMPP_PAYLEN);
	if (seg > s->sent || win < seg)
		return; /* an ACK for what was never sent: ignored */
	if (seg > s->last_ack) {
		s->last_ack = seg;
		s->retries_left = s->timeout_ms ? s->retries_left : RMPP_ACK_RETRIES;
	}
	if (win > s->newwin)
		s->newwin = win;
	if (s->last_ack >= s->seg_count) {
		s->rmpp_done = true;
		if (!s->request) {
			unlink_send(s);
			free_send(s);
			return;
		}
		s->deadline = now_ms() + s->timeout_ms + TIMER_SLACK_MS;
		timers_moved = true;
		return;
	}
	rmpp_send_window(s);
	s->deadline = now_ms() + (s->timeout_ms ? s->timeout_ms : RMPP_ACK_MS);
	timers_moved = true;
}

static void send_ack(const struct reasm *r, const uint8_t *mad, uint8_t type, int seg, int win)
{
	uint8_t ack[MAD_SIZE];

	/* format_ack(): the data's headers, method turned around, type ACK */
	memset(ack, 0, sizeof(ack));
	memcpy(ack, mad, (size_t)r->hdr_len);
	ack[MAD_METHOD] ^= METHOD_RESP;
	ack[RMPP_TYPE] = type;
	ack[RMPP_FLAGS] = (uint8_t)((mad[RMPP_FLAGS] & 0xf8) | RMPP_ACTIVE);
	ack[RMPP_VERSION] = 1;
	put_be32(ack + RMPP_SEG, (uint32_t)seg);
	put_be32(ack + RMPP_PAYLEN, (uint32_t)win);
	send_mad(r->slid, htobe32(r->sqp), r->sqp, ack);
}

static void free_reasm(struct reasm *r)
{
	struct reasm **pp;

	for (pp = &reasms; *pp; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	free(r->buf);
	free(r);
}

/*
 * One RMPP DATA segment for an RMPP agent: start, continue or finish its message
 * (mad_rmpp.c start_rmpp / continue_rmpp / complete_rmpp). Returns the complete message
 * in *out (caller frees) or NULL. Lock held.
 */
static uint8_t *rmpp_data(int file, unsigned gen, int agent, const uint8_t *mad, uint16_t slid,
			  uint32_t sqp, size_t *out_len)
{
	uint64_t tid = get_be64(mad + MAD_TID) & 0xffffffffffffull;
	uint8_t cls = mad[MAD_CLASS], flags = mad[RMPP_FLAGS];
	int seg = (int)get_be32(mad + RMPP_SEG);
	struct reasm *r;
	size_t seg_size;
	uint8_t *msg;

	for (r = reasms; r; r = r->next)
		if (r->file == file && r->gen == gen && r->tid == tid && r->cls == cls && r->slid == slid)
			break;
	if (seg == 1 && (flags & RMPP_FIRST)) {
		if (r)
			free_reasm(r);
		r = calloc(1, sizeof(*r));
		if (!r)
			return NULL;
		r->file = file;
		r->gen = gen;
		r->agent = agent;
		r->tid = tid;
		r->cls = cls;
		r->slid = slid;
		r->sqp = sqp;
		r->hdr_len = data_offset(cls);
		r->cap = MAD_SIZE * 4;
		r->buf = malloc(r->cap);
		if (!r->buf) {
			free(r);
			return NULL;
		}
		memcpy(r->buf, mad, MAD_SIZE);
		r->len = MAD_SIZE;
		r->seg = 1;
		r->newwin = 1;
		r->next = reasms;
		reasms = r;
	} else if (!r) {
		return NULL; /* no message under way: dropped */
	} else if (seg <= r->seg) {
		send_ack(r, mad, RMPP_T_ACK, r->seg, r->newwin); /* a duplicate: ACK again */
		return NULL;
	} else if (seg != r->seg + 1) {
		return NULL; /* out of order: the sender resends the window */
	} else {
		seg_size = MAD_SIZE - (size_t)r->hdr_len;
		if (r->len + seg_size > MAX_RMPP) {
			send_ack(r, mad, RMPP_T_ABORT, 0, 0);
			free_reasm(r);
			return NULL;
		}
		if (r->len + seg_size > r->cap) {
			uint8_t *bigger = realloc(r->buf, r->cap * 2);

			if (!bigger)
				return NULL;
			r->buf = bigger;
			r->cap *= 2;
		}
		memcpy(r->buf + r->len, mad + r->hdr_len, seg_size);
		r->len += seg_size;
		r->seg = seg;
	}
	r->touched = now_ms();
	if (flags & RMPP_LAST) {
		/* get_mad_len(): the last segment's PayloadLength says how much of it is data */
		int pad = RMPP_DATA - (int)get_be32(mad + RMPP_PAYLEN);
		size_t len;

		if (pad < 0 || pad > RMPP_DATA)
			pad = 0;
		len = (size_t)r->hdr_len + (size_t)r->seg * (MAD_SIZE - (size_t)r->hdr_len) - (size_t)pad;
		if (len > r->len)
			len = r->len;
		send_ack(r, mad, RMPP_T_ACK, r->seg, r->seg);
		msg = r->buf;
		r->buf = NULL;
		*out_len = len;
		free_reasm(r);
		return msg;
	}
	if (r->seg >= r->newwin) {
		r->newwin = r->seg + RMPP_WINDOW;
		send_ack(r, mad, RMPP_T_ACK, r->seg, r->newwin);
	}
	return NULL;
}

/* The agent of a file registered for an unsolicited MAD (find_mad_agent()). Lock held. */
static bool find_agent(const uint8_t *mad, int *file, int *agent)
{
	uint8_t cls = mad[MAD_CLASS], version = mad[MAD_VERSION], method = mad[MAD_METHOD] & 0x7f;
	int i, j;

	for (i = 0; i < MAX_FILES; i++) {
		if (!files[i].used)
			continue;
		for (j = 0; j < MAX_AGENTS; j++) {
			const struct agent *a = &files[i].agents[j];

			if (!a->used || !a->mgmt_class || a->mgmt_class != cls || a->version != version)
				continue;
			if (cls >= 0x30 && cls <= 0x4f && memcmp(a->oui, mad + 37, 3))
				continue;
			if (!(a->mask[method / 64] >> (method % 64) & 1))
				continue;
			*file = i;
			*agent = j;
			return true;
		}
	}
	return false;
}

static bool agent_by_hi_tid(uint16_t hi, int *file, int *agent)
{
	int i, j;

	for (i = 0; i < MAX_FILES; i++)
		for (j = 0; files[i].used && j < MAX_AGENTS; j++)
			if (files[i].agents[j].used && files[i].agents[j].hi_tid == hi) {
				*file = i;
				*agent = j;
				return true;
			}
	return false;
}

/* One datagram from the lab. Lock held. */
static void handle(const uint8_t *req)
{
	const uint8_t *mad = req + 32;
	uint16_t slid;
	uint32_t sqp, status = get_be32(req + 16);
	uint64_t tid = get_be64(mad + MAD_TID);
	uint8_t cls = mad[MAD_CLASS];
	int file, agent;
	bool rmpp;
	struct send *s;
	uint8_t *msg;
	size_t len;

	memcpy(&slid, req + 4, 2);
	memcpy(&sqp, req + 12, 4);
	sqp = be32toh(sqp);
	if (status) {
		/* the lab bounced one of our requests: nobody will answer it */
		s = find_send(tid, cls, false);
		if (s && s->request)
			time_out(s);
		return;
	}
	rmpp = rmpp_class(cls) && (mad[RMPP_FLAGS] & RMPP_ACTIVE);
	if (rmpp && mad[RMPP_TYPE] >= RMPP_T_ACK && mad[RMPP_TYPE] <= RMPP_T_ABORT) {
		rmpp_control(mad);
		return;
	}
	if (is_response(mad)) {
		if (!agent_by_hi_tid((uint16_t)(tid >> 32), &file, &agent))
			return;
		s = find_send(tid, cls, false);
		if (!s || !s->request || s->file != file)
			return; /* ib_find_send_mad() found nothing: dropped */
	} else if (!find_agent(mad, &file, &agent)) {
		/* generate_unmatched_resp(): a Get or Set nobody registered for */
		uint8_t resp[MAD_SIZE];
		uint16_t st;

		if (mad[MAD_METHOD] != METHOD_GET && mad[MAD_METHOD] != METHOD_SET)
			return;
		memcpy(resp, mad, MAD_SIZE);
		resp[MAD_METHOD] = METHOD_GET_RESP;
		st = 0x000c | (cls == CLASS_SUBN_DR ? 0x8000 : 0);
		resp[MAD_STATUS] = (uint8_t)(st >> 8);
		resp[MAD_STATUS + 1] = (uint8_t)st;
		send_mad(slid, htobe32(sqp), sqp, resp);
		return;
	} else {
		s = NULL;
	}
	if (rmpp && files[file].agents[agent].rmpp_version && mad[RMPP_TYPE] == RMPP_T_DATA) {
		msg = rmpp_data(file, files[file].gen, agent, mad, slid, sqp, &len);
		if (!msg)
			return;
		deliver(&files[file], agent, msg, len, htobe32(sqp), slid);
		free(msg);
	} else {
		deliver(&files[file], agent, mad, MAD_SIZE, htobe32(sqp), slid);
	}
	if (s) {
		unlink_send(s);
		free_send(s);
	}
}

/* Sends whose time is up: sent again while retries last, then timed out. Lock held. */
static uint64_t expire(void)
{
	uint64_t now = now_ms(), next = now + 60000;
	struct send *s, *following;
	struct reasm *r, *rn;

	for (s = sends; s; s = following) {
		following = s->next;
		if (s->deadline > now) {
			if (s->deadline < next)
				next = s->deadline;
			continue;
		}
		if (!s->retries_left) {
			if (s->request)
				time_out(s);
			else {
				unlink_send(s);
				free_send(s);
			}
			continue;
		}
		s->retries_left--;
		if (s->rmpp && !s->rmpp_done) {
			/* resend the window from the last ACK (ib_retry_rmpp()) */
			s->sent = s->last_ack;
			rmpp_send_window(s);
			s->deadline = now + (s->timeout_ms ? s->timeout_ms : RMPP_ACK_MS);
		} else {
			send_mad(s->dlid, s->dqp, s->sqp, s->mads);
			s->deadline = now + s->timeout_ms + TIMER_SLACK_MS;
		}
		if (s->deadline < next)
			next = s->deadline;
	}
	for (r = reasms; r; r = rn) {
		rn = r->next;
		if (now - r->touched > RMPP_STALE_MS)
			free_reasm(r);
	}
	return next;
}

/*
 * Take the datagrams waiting on the lab's socket, at most DRAIN_MAX, and handle them. The
 * lock is held across recv(), so two threads reading the socket (the receiver and a
 * leader, for a moment) cannot swap two datagrams. A connected datagram socket reports no
 * end when the lab goes away (it just stays quiet), and an error it reports (a pending
 * ECONNRESET) is cleared by the recv() that returns it. Lock held.
 */
#define DRAIN_MAX 16
static void drain(void)
{
	uint8_t req[REQ_SIZE + 1];
	ssize_t n;
	int i;

	for (i = 0; i < DRAIN_MAX; i++) {
		n = recv(data_fd, req, sizeof(req), MSG_DONTWAIT);
		if (n < 0)
			break; /* nothing more now (EAGAIN), or an error this very call cleared */
		if (n == REQ_SIZE)
			handle(req); /* anything else is no ibsim datagram: dropped */
	}
	if (i)
		__atomic_store_n(&rx_at, now_ms(), __ATOMIC_RELAXED);
}

static void *receiver(void *arg)
{
	struct pollfd p[2];
	uint64_t next, now, drained;
	bool woken, aside;
	int timeout;

	(void)arg;
	lock_mu();
	receiver_wakes_at = expire();
	unlock_mu();
	for (;;) {
		/* only this thread writes receiver_wakes_at, so it reads it without the lock */
		next = receiver_wakes_at;
		now = now_ms();
		timeout = next > now ? (int)(next - now) : 0;
		/* a program thread leads and datagrams flow: leave the socket to it (`leader`) */
		aside = __atomic_load_n(&leader, __ATOMIC_ACQUIRE) &&
			now - __atomic_load_n(&rx_at, __ATOMIC_RELAXED) < LEAD_MS;
		if (aside && timeout > LEAD_MS)
			timeout = LEAD_MS;
		p[0].fd = aside ? -1 : data_fd;
		p[0].events = POLLIN;
		p[0].revents = 0;
		p[1].fd = wake_fd;
		p[1].events = POLLIN;
		if (sys_poll(p, 2, timeout) < 0 && errno != EINTR)
			return NULL;
		woken = p[1].revents & POLLIN;
		if (woken && sys_read(wake_fd, &drained, sizeof(drained)) < 0) {
			/* nothing to drain */
		}
		lock_mu();
		if (p[0].revents)
			drain();
		/* the timers are looked at only when one is due or a send due sooner woke the
		 * thread */
		if (woken || timers_moved || now_ms() >= receiver_wakes_at) {
			timers_moved = false;
			receiver_wakes_at = expire();
		}
		unlock_mu();
	}
}

static void resign(void *arg)
{
	(void)arg;
	__atomic_store_n(&leader, 0, __ATOMIC_RELEASE);
}

/*
 * poll() on one umad file, by the program thread that leads (`leader`): it waits on the
 * file and on the lab's socket together, and handles what comes from the lab itself, until
 * the file has a message, the time is up or poll() fails.
 */
static int lead_wait(struct pollfd *fd, int timeout)
{
	struct pollfd p[2];
	uint64_t end = timeout > 0 ? now_ms() + (uint64_t)timeout : 0, now;
	int n, wait;
	struct ufile *f;
	bool queued;

	for (;;) {
		if (timeout < 0) {
			wait = -1;
		} else {
			now = now_ms();
			wait = end > now ? (int)(end - now) : 0;
		}
		p[0].fd = fd->fd;
		p[0].events = fd->events;
		p[0].revents = 0;
		p[1].fd = data_fd;
		p[1].events = POLLIN;
		p[1].revents = 0;
		n = sys_poll(p, 2, wait);
		if (n < 0)
			return -1;
		if (p[1].revents) {
			lock_mu();
			drain();
			f = file_of(fd->fd);
			queued = f && f->queued;
			unlock_mu();
			if (queued)
				p[0].revents |= (short)(fd->events & POLLIN);
		}
		fd->revents = p[0].revents;
		if (fd->revents)
			return 1;
		if (n == 0 || wait == 0)
			return 0;
	}
}

/* poll() on one umad file: leading if no other thread does, else on the file alone, as
 * every other wait is served (by the receiver thread). */
static int lead_poll(struct pollfd *fd, int timeout)
{
	int expected = 0, n;

	if (!__atomic_compare_exchange_n(&leader, &expected, 1, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_RELAXED))
		return sys_poll(fd, 1, timeout);
	/* poll() is a cancellation point: a cancelled leader (OpenSM stopping its receiver
	 * thread) must not keep the socket from the receiver */
	pthread_cleanup_push(resign, NULL);
	n = lead_wait(fd, timeout);
	pthread_cleanup_pop(1);
	return n;
}

/* glibc declares poll()'s array write-only (access attribute), but poll() reads the events
 * it is given, and so does this one */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
EXPORT int poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
	struct ufile *f;
	bool lead;

	if (nfds != 1 || !fds || !(fds[0].events & POLLIN) || !maybe_ours(fds[0].fd))
		return sys_poll(fds, nfds, timeout);
	lock_mu();
	f = file_of(fds[0].fd);
	/* a message already queued: the file itself says so at once */
	lead = f && !f->issm && !f->queued;
	unlock_mu();
	return lead ? lead_poll(fds, timeout) : sys_poll(fds, nfds, timeout);
}
#pragma GCC diagnostic pop

/* ---------------------------------------------------------------- the umad file */
static int open_umad(int flags, bool issm)
{
	struct ufile *f = NULL;
	int i, fd, err = 0;

	lock_mu();
	for (i = 0; i < MAX_FILES && !f; i++)
		if (!files[i].used)
			f = &files[i];
	if (!f) {
		unlock_mu();
		errno = EMFILE;
		return -1;
	}
	fd = eventfd(0, EFD_SEMAPHORE | (flags & O_NONBLOCK ? EFD_NONBLOCK : 0) |
				(flags & O_CLOEXEC ? EFD_CLOEXEC : 0));
	if (fd < 0) {
		err = errno;
	} else {
		memset(f, 0, sizeof(*f));
		f->used = true;
		f->fd = fd;
		mark_fd(fd, true);
		f->gen = ++file_gen;
		f->issm = issm;
	}
	unlock_mu();
	if (!err && issm) {
		int one = 1;

		err = ctl_call(CTL_SET_ISSM, &one, sizeof(one), NULL);
		port_info_at = 0; /* the capability mask changed */
		if (err) {
			lock_mu();
			f->used = false;
			mark_fd(fd, false);
			unlock_mu();
			sys_close(fd);
		}
	}
	if (err) {
		errno = err;
		return -1;
	}
	return fd;
}

/* Forget a file: its agents, queue, sends and reassemblies. Lock held. */
static void drop_file(struct ufile *f)
{
	int index = (int)(f - files);
	struct send *s, *sn;
	struct reasm *r, *rn;
	struct packet *p, *pn;

	for (s = sends; s; s = sn) {
		sn = s->next;
		if (s->file == index && s->gen == f->gen) {
			unlink_send(s);
			free_send(s);
		}
	}
	for (r = reasms; r; r = rn) {
		rn = r->next;
		if (r->file == index && r->gen == f->gen)
			free_reasm(r);
	}
	for (p = f->head; p; p = pn) {
		pn = p->next;
		free(p);
	}
	f->used = false;
	mark_fd(f->fd, false);
}

/* Which fake path, if any: 1 umad0, 2 issm0, 0 neither (device files of this port). */
static int device_file(const char *path)
{
	if (!strcmp(path, "/dev/infiniband/umad0"))
		return 1;
	if (!strcmp(path, "/dev/infiniband/issm0"))
		return 2;
	return 0;
}

static bool under(const char *path, const char *prefix)
{
	size_t n = strlen(prefix);

	return !strncmp(path, prefix, n) && (path[n] == '\0' || path[n] == '/');
}

static bool ours(const char *path)
{
	return path && (under(path, "/sys/class/infiniband") ||
			under(path, "/sys/class/infiniband_mad") || under(path, "/dev/infiniband"));
}

/* Opening a file of the port: rewrite it from the daemon first, so it is live. */
static void port_file(const char *path)
{
	char prefix[128];
	size_t n;

	snprintf(prefix, sizeof(prefix), "/sys/class/infiniband/%s/ports/%u/", dev_name, port_num);
	n = strlen(prefix);
	if (strncmp(path, prefix, n) || !path[n])
		return;
	lock_mu();
	write_port(path + n);
	unlock_mu();
}

/*
 * The path to use for `path`: itself, or the same path under the private tree when it is
 * one of ours (the port's files rewritten from the daemon first). NULL and errno when the
 * lab cannot be reached.
 */
static const char *redirect(const char *path, char *buf, size_t cap)
{
	if (!ours(path))
		return path;
	if (!ready()) {
		errno = ENOENT; /* as on a machine without the ib_umad module */
		return NULL;
	}
	port_file(path);
	if ((size_t)snprintf(buf, cap, "%s%s", root, path) >= cap) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	return buf;
}

static int open_common(const char *path, int flags, mode_t mode,
		       int (*real)(const char *, int, ...))
{
	char buf[PATH_MAX];
	const char *target;
	int kind;

	if (ours(path) && (kind = device_file(path)) != 0) {
		if (!ready()) {
			errno = ENODEV;
			return -1;
		}
		return open_umad(flags, kind == 2);
	}
	target = redirect(path, buf, sizeof(buf));
	if (!target)
		return -1;
	return real(target, flags, mode);
}

static mode_t mode_arg(int flags, va_list ap)
{
	return flags & (O_CREAT | O_TMPFILE) ? va_arg(ap, mode_t) : 0;
}

EXPORT int open(const char *path, int flags, ...)
{
	REAL(int, open, const char *, int, ...);
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = mode_arg(flags, ap);
	va_end(ap);
	return open_common(path, flags, mode, real_open);
}

EXPORT int open64(const char *path, int flags, ...)
{
	REAL(int, open64, const char *, int, ...);
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = mode_arg(flags, ap);
	va_end(ap);
	return open_common(path, flags, mode, real_open64);
}

EXPORT int __open_2(const char *path, int flags)
{
	REAL(int, open, const char *, int, ...);
	return open_common(path, flags, 0, real_open);
}

EXPORT int __open64_2(const char *path, int flags)
{
	REAL(int, open64, const char *, int, ...);
	return open_common(path, flags, 0, real_open64);
}

EXPORT FILE *fopen(const char *path, const char *mode)
{
	char buf[PATH_MAX];
	const char *target = redirect(path, buf, sizeof(buf));

	return target ? sys_fopen(target, mode) : NULL;
}

EXPORT FILE *fopen64(const char *path, const char *mode)
{
	REAL(FILE *, fopen64, const char *, const char *);
	char buf[PATH_MAX];
	const char *target = redirect(path, buf, sizeof(buf));

	return target ? real_fopen64(target, mode) : NULL;
}

EXPORT DIR *opendir(const char *path)
{
	REAL(DIR *, opendir, const char *);
	char buf[PATH_MAX];
	const char *target = redirect(path, buf, sizeof(buf));

	return target ? real_opendir(target) : NULL;
}

EXPORT int scandir(const char *path, struct dirent ***list,
		   int (*filter)(const struct dirent *),
		   int (*compar)(const struct dirent **, const struct dirent **))
{
	REAL(int, scandir, const char *, struct dirent ***, int (*)(const struct dirent *),
	     int (*)(const struct dirent **, const struct dirent **));
	char buf[PATH_MAX];
	const char *target = redirect(path, buf, sizeof(buf));

	return target ? real_scandir(target, list, filter, compar) : -1;
}

EXPORT int access(const char *path, int how)
{
	REAL(int, access, const char *, int);
	char buf[PATH_MAX];
	const char *target = redirect(path, buf, sizeof(buf));

	return target ? real_access(target, how) : -1;
}

EXPORT int stat(const char *path, struct stat *st)
{
	REAL(int, stat, const char *, struct stat *);
	char buf[PATH_MAX];
	const char *target = redirect(path, buf, sizeof(buf));

	return target ? real_stat(target, st) : -1;
}

EXPORT int close(int fd)
{
	struct ufile *f;
	bool issm = false;

	if (!maybe_ours(fd))
		return sys_close(fd);
	lock_mu();
	f = file_of(fd);
	if (f) {
		issm = f->issm;
		drop_file(f);
	}
	unlock_mu();
	if (issm) {
		int zero = 0;

		ctl_call(CTL_SET_ISSM, &zero, sizeof(zero), NULL);
		port_info_at = 0;
	}
	return sys_close(fd);
}

/* read(): the next message, as ib_umad_read() copies it. */
static ssize_t umad_read(struct ufile *f, int fd, uint8_t *buf, size_t count)
{
	size_t hsize = hdr_size(f), need;
	struct packet *p;
	uint64_t token, one = 1;
	ssize_t n;
	int err = 0;

	if (count < hsize) {
		unlock_mu();
		errno = EINVAL;
		return -1;
	}
	unlock_mu();
	/* blocks, or EAGAIN with O_NONBLOCK, as the file's flags say */
	n = sys_read(fd, &token, sizeof(token));
	if (n < 0)
		return -1;
	lock_mu();
	f = file_of(fd);
	p = f ? f->head : NULL;
	if (!p) {
		unlock_mu();
		errno = f ? EAGAIN : EBADF;
		return -1;
	}
	need = p->send || p->mad_len <= MAD_SIZE ? hsize + p->mad_len : hsize + MAD_SIZE;
	if (count < need) {
		err = EINVAL;
	} else {
		memcpy(buf, p->data, hsize);
		if (!p->send && p->mad_len > MAD_SIZE && count < hsize + p->mad_len) {
			/* the first segment, with the message length in the header */
			memcpy(buf + hsize, p->data + HDR_SIZE, MAD_SIZE);
			err = ENOSPC;
		} else {
			memcpy(buf + hsize, p->data + HDR_SIZE, p->mad_len);
		}
	}
	if (err) {
		/* the message stays first in the queue */
		if (sys_write(fd, &one, sizeof(one)) < 0) {
			/* cannot happen with a counter this small */
		}
		unlock_mu();
		errno = err;
		return -1;
	}
	f->head = p->next;
	if (!f->head)
		f->tail = NULL;
	f->queued--;
	n = (ssize_t)(hsize + p->mad_len);
	unlock_mu();
	free(p);
	return n;
}

EXPORT ssize_t read(int fd, void *buf, size_t count)
{
	struct ufile *f;

	if (!maybe_ours(fd))
		return sys_read(fd, buf, count);
	lock_mu();
	f = file_of(fd);
	if (!f) {
		unlock_mu();
		return sys_read(fd, buf, count);
	}
	if (f->issm) {
		/* the issm file has no read or write (ib_umad_sm_fops) */
		unlock_mu();
		errno = EINVAL;
		return -1;
	}
	return umad_read(f, fd, buf, count); /* unlocks */
}

/* write(): one send, as ib_umad_write() takes it. Lock held. */
static ssize_t umad_write(struct ufile *f, const uint8_t *buf, size_t count)
{
	size_t hsize = hdr_size(f), data_len, seg_size;
	uint8_t hdr[HDR_SIZE];
	const uint8_t *mad = buf + hsize;
	struct agent *a;
	struct send *s;
	uint32_t id, timeout, retries, qpn;
	uint16_t lid;
	bool rmpp, request;
	int hdr_len, seg_count, i;
	uint64_t tid;

	if (count < hsize + RMPP_HDR)
		return -EINVAL;
	memset(hdr, 0, sizeof(hdr));
	memcpy(hdr, buf, hsize);
	memcpy(&id, hdr, 4);
	if (id >= MAX_AGENTS || !f->agents[id].used)
		return -EINVAL;
	a = &f->agents[id];
	memcpy(&timeout, hdr + 8, 4);
	memcpy(&retries, hdr + 12, 4);
	memcpy(&qpn, hdr + 20, 4);
	memcpy(&lid, hdr + 28, 2);
	hdr_len = data_offset(mad[MAD_CLASS]);
	rmpp = rmpp_class(mad[MAD_CLASS]) && a->rmpp_version && (mad[RMPP_FLAGS] & RMPP_ACTIVE);
	if (count < hsize + (size_t)hdr_len)
		return -EINVAL;
	data_len = count - hsize - (size_t)hdr_len;
	seg_size = MAD_SIZE - (size_t)hdr_len;
	if (!rmpp && data_len > seg_size)
		return -EINVAL; /* ib_create_send_mad(): more than a MAD without RMPP */
	seg_count = rmpp ? (int)((data_len + seg_size - 1) / seg_size) : 1;
	if (seg_count < 1)
		seg_count = 1;
	request = !is_response(mad);
	tid = get_be64(mad + MAD_TID);
	if (request)
		tid = (tid & 0xffffffffull) | (uint64_t)a->hi_tid << 32;
	if (request && timeout) {
		/* is_duplicate(): a second request with a TID still outstanding */
		for (s = sends; s; s = s->next)
			if (s->request && s->tid == (tid & 0xffffffffffffull) &&
			    s->cls == mad[MAD_CLASS])
				return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->mads = calloc((size_t)seg_count, MAD_SIZE);
	if (!s->mads) {
		free(s);
		return -ENOMEM;
	}
	for (i = 0; i < seg_count; i++) {
		uint8_t *m = s->mads + (size_t)i * MAD_SIZE;
		size_t off = (size_t)i * seg_size, chunk;

		memcpy(m, mad, (size_t)hdr_len); /* MAD, RMPP and class headers in every segment */
		put_be64(m + MAD_TID, tid);
		chunk = data_len > off ? data_len - off : 0;
		if (chunk > seg_size)
			chunk = seg_size;
		memcpy(m + hdr_len, mad + hdr_len + off, chunk);
		if (rmpp) {
			/* paylen: all the data after the RMPP header in the first, what is left in the last */
			size_t pad = (size_t)seg_count * seg_size - data_len;
			uint32_t paylen = 0;

			m[RMPP_VERSION] = 1;
			m[RMPP_TYPE] = RMPP_T_DATA;
			m[RMPP_FLAGS] = (uint8_t)((0x1f << 3) | RMPP_ACTIVE | (i == 0 ? RMPP_FIRST : 0) |
						  (i == seg_count - 1 ? RMPP_LAST : 0));
			put_be32(m + RMPP_SEG, (uint32_t)(i + 1));
			if (i == 0)
				paylen = (uint32_t)((size_t)seg_count * (MAD_SIZE - RMPP_HDR) - pad);
			else if (i == seg_count - 1)
				paylen = (uint32_t)((MAD_SIZE - RMPP_HDR) - pad);
			put_be32(m + RMPP_PAYLEN, paylen);
		}
	}
	memcpy(s->hdr, hdr, HDR_SIZE);
	s->file = (int)(f - files);
	s->gen = f->gen;
	s->agent = (int)id;
	s->tid = tid & 0xffffffffffffull;
	s->cls = mad[MAD_CLASS];
	s->request = request && timeout;
	s->timeout_ms = timeout;
	s->retries_left = timeout ? retries : RMPP_ACK_RETRIES;
	s->dlid = lid;
	s->dqp = qpn;
	s->sqp = a->qpn;
	s->seg_count = seg_count;
	s->rmpp = rmpp;
	if (rmpp) {
		s->newwin = 1;
		rmpp_send_window(s);
		s->deadline = now_ms() + (timeout ? timeout : RMPP_ACK_MS);
	} else {
		send_mad(lid, qpn, a->qpn, s->mads);
		s->deadline = now_ms() + timeout + TIMER_SLACK_MS;
	}
	if (!s->request && !rmpp) {
		free_send(s); /* nothing to wait for */
	} else {
		s->next = sends;
		sends = s;
		if (s->deadline < receiver_wakes_at)
			wake_receiver(); /* due before the receiver would look again */
	}
	return (ssize_t)count;
}

EXPORT ssize_t write(int fd, const void *buf, size_t count)
{
	struct ufile *f;
	ssize_t n;

	if (!maybe_ours(fd))
		return sys_write(fd, buf, count);
	lock_mu();
	f = file_of(fd);
	if (!f) {
		unlock_mu();
		return sys_write(fd, buf, count);
	}
	n = f->issm ? -EINVAL : umad_write(f, buf, count);
	unlock_mu();
	if (n < 0) {
		errno = (int)-n;
		return -1;
	}
	return n;
}

/* REGISTER_AGENT(2): the checks of ib_umad_reg_agent() and ib_register_mad_agent(). */
static int reg_agent(struct ufile *f, uint32_t qpn, uint8_t cls, uint8_t version,
		     const uint64_t mask[2], const uint8_t oui[3], uint8_t rmpp_version,
		     uint32_t *id)
{
	struct agent *a = NULL;
	int i, j;

	if (qpn > 1)
		return EINVAL;
	if (rmpp_version && rmpp_version != 1)
		return EINVAL;
	if (cls) {
		if (version >= 8)
			return EINVAL;
		if (qpn == 0 && cls != CLASS_SUBN_LID && cls != CLASS_SUBN_DR)
			return EINVAL;
		if (qpn == 1 && (cls == CLASS_SUBN_LID || cls == CLASS_SUBN_DR))
			return EINVAL;
		if (rmpp_version && !rmpp_class(cls))
			return EINVAL;
		if (!vendor_class(cls) && cls >= 0x50 && cls != CLASS_SUBN_DR)
			return EINVAL;
		if (cls >= 0x30 && cls <= 0x4f && !(oui[0] | oui[1] | oui[2]))
			return EINVAL;
		/* method_in_use(): a method another agent of this port already takes */
		for (i = 0; i < MAX_FILES; i++)
			for (j = 0; files[i].used && j < MAX_AGENTS; j++) {
				const struct agent *o = &files[i].agents[j];

				if (o->used && o->mgmt_class == cls && o->version == version &&
				    (!(cls >= 0x30 && cls <= 0x4f) || !memcmp(o->oui, oui, 3)) &&
				    ((o->mask[0] & mask[0]) || (o->mask[1] & mask[1])))
					return EINVAL;
			}
	}
	for (i = 0; i < MAX_AGENTS && !a; i++)
		if (!f->agents[i].used)
			a = &f->agents[i];
	if (!a)
		return ENOMEM;
	memset(a, 0, sizeof(*a));
	a->used = true;
	a->qpn = (uint8_t)qpn;
	a->mgmt_class = cls;
	a->version = version;
	a->rmpp_version = rmpp_version;
	memcpy(a->oui, oui, 3);
	if (cls) {
		a->mask[0] = mask[0];
		a->mask[1] = mask[1];
	}
	/* a process-wide id for TID bits 32-47, never 0 and never one in use */
	do {
		next_hi_tid++;
		if (!next_hi_tid)
			next_hi_tid = 1;
		a->hi_tid = next_hi_tid;
		a->used = false;
		j = agent_by_hi_tid(next_hi_tid, &i, &i);
		a->used = true;
	} while (j);
	*id = (uint32_t)(a - f->agents);
	return 0;
}

static int umad_ioctl(struct ufile *f, unsigned long request, void *arg)
{
	if (request == IB_USER_MAD_ENABLE_PKEY) {
		f->pkey = true;
		return 0;
	}
	if (request != IB_USER_MAD_REGISTER_AGENT && request != IB_USER_MAD_REGISTER_AGENT2 &&
	    request != IB_USER_MAD_UNREGISTER_AGENT)
		return ENOTTY; /* ib_umad_ioctl(): -ENOIOCTLCMD */
	if (!arg)
		return EFAULT;
	if (request == IB_USER_MAD_REGISTER_AGENT) {
		struct ib_user_mad_reg_req req;
		uint64_t mask[2];
		uint32_t id;
		int err;

		memcpy(&req, arg, sizeof(req));
		memcpy(mask, req.method_mask, sizeof(mask));
		err = reg_agent(f, req.qpn, req.mgmt_class, req.mgmt_class_version, mask, req.oui,
				req.rmpp_version, &id);
		if (!err)
			memcpy(arg, &id, sizeof(id));
		return err;
	}
	if (request == IB_USER_MAD_REGISTER_AGENT2) {
		struct ib_user_mad_reg_req2 req;
		uint8_t oui[3];
		uint32_t id;
		int err;

		memcpy(&req, arg, sizeof(req));
		if (req.flags & ~(uint32_t)IB_USER_MAD_REG_FLAGS_CAP) {
			req.flags = IB_USER_MAD_REG_FLAGS_CAP;
			memcpy(arg, &req, sizeof(req));
			return EINVAL;
		}
		if (req.flags & IB_USER_MAD_USER_RMPP)
			req.rmpp_version = 0; /* the program does its own RMPP */
		if (req.oui & 0xff000000u)
			return EINVAL;
		oui[0] = (uint8_t)(req.oui >> 16);
		oui[1] = (uint8_t)(req.oui >> 8);
		oui[2] = (uint8_t)req.oui;
		err = reg_agent(f, req.qpn, req.mgmt_class, req.mgmt_class_version,
				(const uint64_t *)req.method_mask, oui, req.rmpp_version, &id);
		if (!err) {
			req.id = id;
			memcpy(arg, &req, sizeof(req));
		}
		return err;
	}
	if (request == IB_USER_MAD_UNREGISTER_AGENT) {
		uint32_t id;
		int index = (int)(f - files);
		struct send *s, *sn;

		memcpy(&id, arg, sizeof(id));
		if (id >= MAX_AGENTS || !f->agents[id].used)
			return EINVAL;
		f->agents[id].used = false;
		for (s = sends; s; s = sn) {
			sn = s->next;
			if (s->file == index && s->gen == f->gen && s->agent == (int)id) {
				unlink_send(s);
				free_send(s);
			}
		}
		return 0;
	}
	return ENOTTY; /* ib_umad_ioctl(): -ENOIOCTLCMD */
}

EXPORT int ioctl(int fd, unsigned long request, ...)
{
	REAL(int, ioctl, int, unsigned long, ...);
	struct ufile *f;
	va_list ap;
	void *arg;
	int err;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	lock_mu();
	f = file_of(fd);
	if (!f) {
		unlock_mu();
		return real_ioctl(fd, request, arg);
	}
	err = f->issm ? ENOTTY : umad_ioctl(f, request, arg);
	unlock_mu();
	if (err) {
		errno = err;
		return -1;
	}
	return 0;
}
