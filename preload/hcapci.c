/*
 * The PCI preload: the real mstflint and mstmcra, given a PCI address (`-d 01:00.0`),
 * reach the lab host's own ConnectX-3 through the daemon (docs/secure-host.md, "The real
 * mstflint on the local path").
 *
 * mstflint 4.21 (mtcr_ul/mtcr_ul_com.c at tag v4.21.0-1) finds a device by PCI address in
 * /sys/bus/pci/devices, takes a lock file in /tmp/mstflint_lockfiles, tries to map
 * resource0 and, failing that, opens the function's `config` file. A ConnectX-3 has no
 * vendor-specific capability, so CR-space is reached through two config-space registers:
 * the address is written at 0x58 and the dword is then read or written at 0x5c
 * (mtcr_pciconf_mread4_old / mtcr_pciconf_mwrite4_old, PCICONF_ADDR_OFF/PCICONF_DATA_OFF).
 *
 * So this library:
 * - turns those three path prefixes (and /proc/bus/pci, mstflint's fallback) into the
 *   same paths under $HCASIM_PCI_ROOT, where `hcasim exec` wrote the host's own PCI
 *   functions (hcasim.lab.pci_sysfs): no other device of the machine can be found, and
 *   resource0 is absent, because a mapping of CR-space cannot be answered per access;
 * - answers the two gateway registers of an opened `config` file with the daemon's
 *   cr_read / cr_write of that device, so each dword goes through the same CR-space (lock,
 *   semaphores, tools HCR, flash gateway) as every other path. Other config bytes are the
 *   file's.
 *
 * Nothing here prints or logs: the key typed at hw_access passes through cr_write.
 */
#define _GNU_SOURCE
#include "labwire.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

/* The gateway registers in config space (mtcr_ul/mtcr_ul_com.c:774-775 at v4.21.0-1). */
#define GW_ADDR 0x58
#define GW_DATA 0x5c
/* Config files one process may hold open at once (mstflint holds one or two). */
#define MAX_GATEWAYS 16
#define PCI_DEVICES "/sys/bus/pci/devices"
#define CONFIG_SUFFIX "/config"

/* Real paths the tools use, and where under $HCASIM_PCI_ROOT they are kept instead. */
static const struct {
	const char *real;
	const char *kept;
} REDIRECTS[] = {
	{ PCI_DEVICES, "/sys/bus/pci/devices" },
	{ "/tmp/mstflint_lockfiles", "/mstflint_lockfiles" },
	{ "/proc/bus/pci", "/proc/bus/pci" },
};

/* An open `config` file of a lab device: its fd, daemon handle and address register. */
struct gateway {
	bool used;
	int fd;
	char handle[128];
	uint32_t addr;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct gateway gateways[MAX_GATEWAYS];
/* One daemon session per process: the device semaphores mstflint takes are this
 * session's, and the daemon releases them when the process ends. */
static int conn = -1;

static void *next_symbol(const char *name)
{
	return dlsym(RTLD_NEXT, name);
}

/*
 * The path to use for `path`: itself, or the kept path written into buf when it starts
 * with one of REDIRECTS (a whole component: "/sys/bus/pci/devicesX" is not redirected).
 * NULL with ENAMETOOLONG when the kept path does not fit.
 */
static const char *redirect(const char *path, char *buf, size_t cap)
{
	const char *root = getenv("HCASIM_PCI_ROOT");
	size_t i;

	if (!path || !root || !*root)
		return path;
	for (i = 0; i < sizeof(REDIRECTS) / sizeof(REDIRECTS[0]); i++) {
		size_t n = strlen(REDIRECTS[i].real);

		if (strncmp(path, REDIRECTS[i].real, n) || (path[n] && path[n] != '/'))
			continue;
		if ((size_t)snprintf(buf, cap, "%s%s%s", root, REDIRECTS[i].kept, path + n) >= cap) {
			errno = ENAMETOOLONG;
			return NULL;
		}
		return buf;
	}
	return path;
}

/* Whether `path` is a function's config file, /sys/bus/pci/devices/<address>/config. */
static bool is_config(const char *path)
{
	size_t prefix = strlen(PCI_DEVICES "/"), len = strlen(path), suffix = strlen(CONFIG_SUFFIX);
	const char *name = path + prefix;

	if (strncmp(path, PCI_DEVICES "/", prefix) || len <= prefix + suffix)
		return false;
	if (strcmp(path + len - suffix, CONFIG_SUFFIX))
		return false;
	/* exactly one component between: the address */
	return memchr(name, '/', len - prefix - suffix) == NULL;
}

/* Open the device behind a config path in the daemon; its handle into g. Lock held. */
static int open_device(const char *path, struct gateway *g)
{
	struct lw_buf req = { 0 }, reply = { 0 };
	const char *v, *end;
	int err;

	if (conn < 0) {
		conn = lw_connect(getenv("HCASIM_HOST"));
		if (conn < 0)
			return errno;
	}
	err = lw_req_start(&req, "open") || lw_req_str(&req, "path", path) ? ENOMEM
									     : lw_call(conn, &req, &reply);
	if (!err) {
		v = lw_get(reply.data, "handle");
		end = v && *v == '"' ? strchr(v + 1, '"') : NULL;
		/* the daemon's handle is a device ident: a plain string, no escapes */
		if (!end || (size_t)(end - v - 1) >= sizeof(g->handle)) {
			err = EIO;
		} else {
			memcpy(g->handle, v + 1, (size_t)(end - v - 1));
			g->handle[end - v - 1] = '\0';
		}
	}
	lw_buf_free(&req);
	lw_buf_free(&reply);
	return err;
}

static struct gateway *gateway_of(int fd)
{
	int i;

	for (i = 0; i < MAX_GATEWAYS; i++)
		if (gateways[i].used && gateways[i].fd == fd)
			return &gateways[i];
	return NULL;
}

/* After the real open of a config file: make fd a gateway. Returns fd, or -1 and errno. */
static int gateway_open(const char *path, int fd)
{
	struct gateway *g = NULL;
	int i, err;

	pthread_mutex_lock(&lock);
	for (i = 0; i < MAX_GATEWAYS && !g; i++)
		if (!gateways[i].used)
			g = &gateways[i];
	err = g ? open_device(path, g) : EMFILE;
	if (!err) {
		g->used = true;
		g->fd = fd;
		g->addr = 0;
	}
	pthread_mutex_unlock(&lock);
	if (err) {
		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

EXPORT int open64(const char *path, int flags, ...)
{
	static int (*real)(const char *, int, ...);
	char buf[PATH_MAX];
	const char *target = redirect(path, buf, sizeof(buf));
	mode_t mode = 0;
	bool config;
	int fd;

	if (flags & (O_CREAT | O_TMPFILE)) {
		va_list ap;

		va_start(ap, flags);
		mode = va_arg(ap, mode_t);
		va_end(ap);
	}
	if (!real)
		real = next_symbol("open64");
	if (!target)
		return -1;
	config = target != path && is_config(path);
	if (config)
		/* the header is read-only here; only the gateway registers take writes */
		flags = (flags & ~O_ACCMODE) | O_RDONLY;
	fd = real(target, flags, mode);
	return fd >= 0 && config ? gateway_open(path, fd) : fd;
}

EXPORT FILE *fopen(const char *path, const char *mode)
{
	static FILE *(*real)(const char *, const char *);
	char buf[PATH_MAX];
	const char *target = redirect(path, buf, sizeof(buf));

	if (!real)
		real = next_symbol("fopen");
	return target ? real(target, mode) : NULL;
}

EXPORT FILE *fopen64(const char *path, const char *mode)
{
	static FILE *(*real)(const char *, const char *);
	char buf[PATH_MAX];
	const char *target = redirect(path, buf, sizeof(buf));

	if (!real)
		real = next_symbol("fopen64");
	return target ? real(target, mode) : NULL;
}

EXPORT DIR *opendir(const char *path)
{
	static DIR *(*real)(const char *);
	char buf[PATH_MAX];
	const char *target = redirect(path, buf, sizeof(buf));

	if (!real)
		real = next_symbol("opendir");
	return target ? real(target) : NULL;
}

EXPORT int mkdir(const char *path, mode_t mode)
{
	static int (*real)(const char *, mode_t);
	char buf[PATH_MAX];
	const char *target = redirect(path, buf, sizeof(buf));

	if (!real)
		real = next_symbol("mkdir");
	return target ? real(target, mode) : -1;
}

EXPORT int close(int fd)
{
	static int (*real)(int);
	struct gateway *g;

	if (!real)
		real = next_symbol("close");
	pthread_mutex_lock(&lock);
	g = gateway_of(fd);
	if (g)
		g->used = false;
	pthread_mutex_unlock(&lock);
	return real(fd);
}

/* One dword through the daemon: cr_read into *value, or cr_write of *value. Lock held. */
static int cr_access(struct gateway *g, bool write, uint32_t *value)
{
	struct lw_buf req = { 0 }, reply = { 0 };
	const char *v;
	char *end = NULL;
	int err;

	err = lw_req_start(&req, write ? "cr_write" : "cr_read") ||
			      lw_req_str(&req, "handle", g->handle) ||
			      lw_req_int(&req, "addr", g->addr) ||
			      (write ? lw_req_uint32s(&req, "values", value, 1)
				     : lw_req_int(&req, "count", 1))
		      ? ENOMEM
		      : lw_call(conn, &req, &reply);
	if (!err && !write) {
		/* {"values": [N], ...} */
		v = lw_get(reply.data, "values");
		if (!v || *v != '[')
			err = EIO;
		else
			*value = (uint32_t)strtoull(v + 1, &end, 10);
		if (!err && *end != ']')
			err = EIO;
	}
	lw_buf_free(&req);
	lw_buf_free(&reply);
	return err;
}

EXPORT ssize_t pread64(int fd, void *buf, size_t count, off64_t offset)
{
	static ssize_t (*real)(int, void *, size_t, off64_t);
	unsigned char *out = buf;
	struct gateway *g;
	uint32_t value = 0;
	int err = 0;

	if (!real)
		real = next_symbol("pread64");
	pthread_mutex_lock(&lock);
	g = count == 4 && (offset == GW_ADDR || offset == GW_DATA) ? gateway_of(fd) : NULL;
	if (g) {
		if (offset == GW_ADDR)
			value = g->addr;
		else
			err = cr_access(g, false, &value);
	}
	pthread_mutex_unlock(&lock);
	if (!g)
		return real(fd, buf, count, offset);
	if (err) {
		errno = err;
		return -1;
	}
	/* PCI registers are little-endian (mstflint converts with __le32_to_cpu) */
	out[0] = (unsigned char)value;
	out[1] = (unsigned char)(value >> 8);
	out[2] = (unsigned char)(value >> 16);
	out[3] = (unsigned char)(value >> 24);
	return 4;
}

EXPORT ssize_t pwrite64(int fd, const void *buf, size_t count, off64_t offset)
{
	static ssize_t (*real)(int, const void *, size_t, off64_t);
	const unsigned char *in = buf;
	struct gateway *g;
	uint32_t value;
	int err = 0;

	if (!real)
		real = next_symbol("pwrite64");
	pthread_mutex_lock(&lock);
	g = count == 4 && (offset == GW_ADDR || offset == GW_DATA) ? gateway_of(fd) : NULL;
	if (g) {
		value = (uint32_t)in[0] | (uint32_t)in[1] << 8 | (uint32_t)in[2] << 16 |
			(uint32_t)in[3] << 24;
		if (offset == GW_ADDR)
			g->addr = value;
		else
			err = cr_access(g, true, &value);
	}
	pthread_mutex_unlock(&lock);
	if (!g)
		return real(fd, buf, count, offset);
	if (err) {
		errno = err;
		return -1;
	}
	return 4;
}
