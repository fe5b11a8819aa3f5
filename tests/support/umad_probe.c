/*
 * A libibumad-free client of /dev/infiniband/umad0 for tests/test_umad_preload.py: raw
 * open, ioctl, read, write and poll, so each of the umad preload's paths is reached as the
 * kernel's ib_umad would be (linux include/uapi/rdma/ib_user_mad.h).
 *
 *   umad_probe checks              registration, bad ioctls and I/O, EAGAIN, issm
 *   umad_probe serve               on the peer: IsSM, an SA agent; counts, answers RMPP
 *   umad_probe client PEER_LID     timeouts with retries, an unmatched request, RMPP
 *   umad_probe waits LID           every way to wait for an SMP's answer: poll() alone (the
 *                                  thread reads the lab's socket itself), poll() with a
 *                                  message queued, two threads polling, a blocking read(),
 *                                  poll() on two fds, a poller cancelled
 *
 * Each step prints one line the test compares exactly.
 */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <rdma/ib_user_mad.h>

#define HDR 64
#define SA_HDR 56
#define REQ_DATA 1000
#define RESP_DATA 3000

static const char *err_name(int e)
{
	switch (e) {
	case 0: return "ok";
	case EINVAL: return "EINVAL";
	case ENOMEM: return "ENOMEM";
	case ENOTTY: return "ENOTTY";
	case EAGAIN: return "EAGAIN";
	case ENOSPC: return "ENOSPC";
	case EFAULT: return "EFAULT";
	default: return strerror(e);
	}
}

static int reg(int fd, int qpn, int cls, int version, int rmpp, const int *methods, int n,
	       const char *label)
{
	struct ib_user_mad_reg_req req;
	int i, rc;

	memset(&req, 0, sizeof(req));
	req.qpn = (uint8_t)qpn;
	req.mgmt_class = (uint8_t)cls;
	req.mgmt_class_version = (uint8_t)version;
	req.rmpp_version = (uint8_t)rmpp;
	for (i = 0; i < n; i++)
		req.method_mask[methods[i] / (8 * sizeof(long))] |= 1UL << (methods[i] % (8 * sizeof(long)));
	rc = ioctl(fd, IB_USER_MAD_REGISTER_AGENT, &req);
	if (label) {
		if (rc)
			printf("%s: %s\n", label, err_name(errno));
		else
			printf("%s: agent %u\n", label, req.id);
	}
	return rc ? -1 : (int)req.id;
}

static uint32_t cap_mask(void)
{
	char buf[64] = "";
	FILE *f = fopen("/sys/class/infiniband_mad/umad0/ibdev", "r");
	char dev[32] = "", path[160];

	if (!f || !fgets(dev, sizeof(dev), f))
		return 0xffffffff;
	fclose(f);
	dev[strcspn(dev, "\n")] = 0;
	snprintf(path, sizeof(path), "/sys/class/infiniband/%s/ports/1/cap_mask", dev);
	f = fopen(path, "r");
	if (!f || !fgets(buf, sizeof(buf), f))
		return 0xffffffff;
	fclose(f);
	return (uint32_t)strtoul(buf, NULL, 0);
}

static void sa_mad(uint8_t *mad, uint8_t version, uint8_t method, uint32_t tid)
{
	memset(mad, 0, 256);
	mad[0] = 1;
	mad[1] = 0x03;
	mad[2] = version;
	mad[3] = method;
	*(uint64_t *)(mad + 8) = htobe64(tid);
	*(uint16_t *)(mad + 16) = htobe16(0x0011); /* NodeRecord */
}

static void umad_hdr(uint8_t *buf, int agent, uint16_t lid, uint32_t timeout, uint32_t retries)
{
	struct ib_user_mad_hdr *h = (struct ib_user_mad_hdr *)buf;

	memset(h, 0, HDR);
	h->id = (uint32_t)agent;
	h->timeout_ms = timeout;
	h->retries = retries;
	h->qpn = htobe32(1);
	h->qkey = htobe32(0x80010000);
	h->lid = htobe16(lid);
}

static int wait_read(int fd, uint8_t *buf, size_t count, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int n;

	if (poll(&p, 1, ms) != 1)
		return -ETIMEDOUT;
	n = (int)read(fd, buf, count);
	return n < 0 ? -errno : n;
}

static int checks(void)
{
	int fd, issm, i, n, id2, methods[] = { 0x01, 0x12 }, get[] = { 0x01 };
	uint8_t buf[HDR + 2048];
	struct ib_user_mad_reg_req2 req2;
	struct pollfd p;
	uint32_t id;

	fd = open("/dev/infiniband/umad0", O_RDWR | O_NONBLOCK);
	if (fd < 0) {
		printf("open: %s\n", strerror(errno));
		return 1;
	}
	printf("enable pkey: %s\n", ioctl(fd, IB_USER_MAD_ENABLE_PKEY, NULL) ? err_name(errno) : "ok");
	reg(fd, 1, 0x03, 2, 1, methods, 2, "SA v2 Get GetTable rmpp");
	reg(fd, 1, 0x03, 2, 0, get, 1, "SA v2 Get again");
	reg(fd, 1, 0x03, 1, 0, get, 1, "SA v1 Get");
	reg(fd, 2, 0x03, 2, 0, NULL, 0, "qpn 2");
	reg(fd, 1, 0x01, 1, 0, get, 1, "SMI class on QP1");
	reg(fd, 0, 0x81, 1, 0, get, 1, "SMI DR class on QP0");
	reg(fd, 1, 0x04, 1, 2, get, 1, "rmpp version 2");
	reg(fd, 1, 0x04, 1, 1, get, 1, "rmpp on PerfMgt");
	reg(fd, 1, 0x30, 1, 0, get, 1, "vendor class without OUI");
	memset(&req2, 0, sizeof(req2));
	req2.qpn = 1;
	req2.mgmt_class = 0x04;
	req2.mgmt_class_version = 1;
	req2.flags = 0x80;
	n = ioctl(fd, IB_USER_MAD_REGISTER_AGENT2, &req2);
	printf("register2 bad flags: %s, flags 0x%x\n", n ? err_name(errno) : "ok", req2.flags);
	req2.flags = 0;
	n = ioctl(fd, IB_USER_MAD_REGISTER_AGENT2, &req2);
	id2 = (int)req2.id;
	if (n)
		printf("register2 PerfMgt: %s\n", err_name(errno));
	else
		printf("register2 PerfMgt: agent %d\n", id2);
	id = 1;
	printf("unregister 1: %s\n", ioctl(fd, IB_USER_MAD_UNREGISTER_AGENT, &id) ? err_name(errno) : "ok");
	printf("unregister 1 again: %s\n",
	       ioctl(fd, IB_USER_MAD_UNREGISTER_AGENT, &id) ? err_name(errno) : "ok");
	id = 99;
	printf("unregister 99: %s\n", ioctl(fd, IB_USER_MAD_UNREGISTER_AGENT, &id) ? err_name(errno) : "ok");
	printf("unknown ioctl: %s\n", ioctl(fd, _IO(IB_IOCTL_MAGIC, 9), NULL) ? err_name(errno) : "ok");
	n = (int)read(fd, buf, sizeof(buf));
	printf("read empty: %s\n", n < 0 ? err_name(errno) : "data");
	n = (int)read(fd, buf, 10);
	printf("read 10 bytes: %s\n", n < 0 ? err_name(errno) : "data");
	p.fd = fd;
	p.events = POLLIN | POLLOUT;
	n = poll(&p, 1, 0);
	printf("poll: %d%s%s\n", n, p.revents & POLLIN ? " in" : "", p.revents & POLLOUT ? " out" : "");
	n = (int)write(fd, buf, 20);
	printf("write 20 bytes: %s\n", n < 0 ? err_name(errno) : "ok");
	umad_hdr(buf, 31, 1, 0, 0);
	sa_mad(buf + HDR, 2, 0x01, 1);
	n = (int)write(fd, buf, HDR + 256);
	printf("write unregistered agent: %s\n", n < 0 ? err_name(errno) : "ok");
	umad_hdr(buf, id2, 1, 0, 0);
	n = (int)write(fd, buf, HDR + 300);
	printf("write 300 bytes without RMPP: %s\n", n < 0 ? err_name(errno) : "ok");
	for (i = 0, n = 0; i < 40 && n >= 0; i++)
		n = reg(fd, 1, 0, 0, 0, NULL, 0, NULL);
	printf("agents: %s after %d more\n", err_name(errno), i - 1);
	close(fd);
	printf("IsSM before issm0: %u\n", (cap_mask() >> 1) & 1);
	issm = open("/dev/infiniband/issm0", O_RDWR);
	printf("IsSM with issm0 open: %u\n", (cap_mask() >> 1) & 1);
	n = (int)read(issm, buf, sizeof(buf));
	printf("read issm0: %s\n", n < 0 ? err_name(errno) : "data");
	close(issm);
	printf("IsSM after close: %u\n", (cap_mask() >> 1) & 1);
	return 0;
}

static void pattern(uint8_t *p, size_t n, uint8_t seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + i * 7 + i / 251);
}

static int serve(void)
{
	static uint8_t buf[HDR + SA_HDR + RESP_DATA], want[REQ_DATA];
	int issm, fd, agent, gets = 0, methods[] = { 0x01, 0x14 };
	uint64_t first_tid = 0;
	bool same = true;
	struct ib_user_mad_hdr *h = (struct ib_user_mad_hdr *)buf;
	int n;

	issm = open("/dev/infiniband/issm0", O_RDWR);
	fd = open("/dev/infiniband/umad0", O_RDWR);
	if (issm < 0 || fd < 0 || ioctl(fd, IB_USER_MAD_ENABLE_PKEY, NULL))
		return 1;
	agent = reg(fd, 1, 0x03, 2, 1, methods, 2, NULL);
	if (agent < 0)
		return 1;
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		n = wait_read(fd, buf, HDR + 256, 20000);
		if (n == -ENOSPC) {
			printf("first read: ENOSPC, length %u\n", h->length);
			n = wait_read(fd, buf, sizeof(buf), 0);
			break;
		}
		if (n < 0) {
			printf("serve: %s\n", strerror(-n));
			return 1;
		}
		if (buf[HDR + 3] == 0x01) {
			uint64_t tid = be64toh(*(uint64_t *)(buf + HDR + 8));

			if (!gets++)
				first_tid = tid;
			same = same && tid == first_tid;
		}
	}
	printf("Get received %d times, %s TID\n", gets, same ? "same" : "different");
	pattern(want, sizeof(want), 3);
	printf("request: read %d, method 0x%02x, data %s\n", n, buf[HDR + 3],
	       n == HDR + SA_HDR + REQ_DATA && !memcmp(buf + HDR + SA_HDR, want, sizeof(want)) ? "intact"
											: "wrong");
	/* the response: same TID, back where it came from, three times as long */
	buf[HDR + 3] = 0x94;
	buf[HDR + 24] = 1;
	buf[HDR + 25] = 1;
	buf[HDR + 26] = 1; /* RMPP active: the MAD layer segments it */
	h->timeout_ms = 0;
	h->retries = 0;
	pattern(buf + HDR + SA_HDR, RESP_DATA, 11);
	n = (int)write(fd, buf, HDR + SA_HDR + RESP_DATA);
	printf("response: %s\n", n < 0 ? strerror(errno) : "sent");
	fflush(stdout);
	sleep(2); /* the MAD layer sends the rest as the ACKs come */
	close(fd);
	close(issm);
	return 0;
}

static int client(uint16_t peer)
{
	static uint8_t buf[HDR + SA_HDR + RESP_DATA], want[RESP_DATA];
	struct ib_user_mad_hdr *h = (struct ib_user_mad_hdr *)buf;
	int fd, agent, methods[] = { 0x01 }, n;

	fd = open("/dev/infiniband/umad0", O_RDWR);
	if (fd < 0 || ioctl(fd, IB_USER_MAD_ENABLE_PKEY, NULL))
		return 1;
	agent = reg(fd, 1, 0x03, 2, 1, methods, 0, NULL);
	/* 1. nobody answers: sent again twice, then back with ETIMEDOUT */
	umad_hdr(buf, agent, peer, 100, 2);
	sa_mad(buf + HDR, 2, 0x01, 0x1001);
	n = (int)write(fd, buf, HDR + 256);
	memset(buf, 0, HDR + 256);
	n = wait_read(fd, buf, HDR + 256, 5000);
	printf("timeout: read %d, status %u, length %u, agent %u, method 0x%02x, tid 0x%x\n", n,
	       h->status, h->length, h->id, buf[HDR + 3],
	       (unsigned)be64toh(*(uint64_t *)(buf + HDR + 8)) & 0xffffffffu);
	/* 2. a class version nobody registered: the peer's MAD layer answers 0x000C */
	umad_hdr(buf, agent, peer, 1000, 0);
	sa_mad(buf + HDR, 1, 0x01, 0x1002);
	n = (int)write(fd, buf, HDR + 256);
	n = wait_read(fd, buf, HDR + 256, 5000);
	printf("unmatched: read %d, method 0x%02x, status 0x%04x, tid 0x%x\n", n, buf[HDR + 3],
	       be16toh(*(uint16_t *)(buf + HDR + 4)),
	       (unsigned)be64toh(*(uint64_t *)(buf + HDR + 8)) & 0xffffffffu);
	/* 3. RMPP both ways: 1000 bytes of request, 3000 of response */
	umad_hdr(buf, agent, peer, 2000, 0);
	sa_mad(buf + HDR, 2, 0x14, 0x1003);
	buf[HDR + 24] = 1;
	buf[HDR + 25] = 1;
	buf[HDR + 26] = 1;
	pattern(buf + HDR + SA_HDR, REQ_DATA, 3);
	n = (int)write(fd, buf, HDR + SA_HDR + REQ_DATA);
	printf("rmpp request: %s\n", n < 0 ? strerror(errno) : "written");
	n = wait_read(fd, buf, HDR + 256, 5000);
	printf("rmpp first read: %s, length %u\n", n == -ENOSPC ? "ENOSPC" : "data", h->length);
	n = wait_read(fd, buf, sizeof(buf), 0);
	pattern(want, sizeof(want), 11);
	printf("rmpp response: read %d, method 0x%02x, tid 0x%x, data %s\n", n, buf[HDR + 3],
	       (unsigned)be64toh(*(uint64_t *)(buf + HDR + 8)) & 0xffffffffu,
	       n == HDR + SA_HDR + RESP_DATA && !memcmp(buf + HDR + SA_HDR, want, sizeof(want))
		       ? "intact" : "wrong");
	close(fd);
	return 0;
}

/* A LID-routed NodeInfo Get to lid on QP0; its answer comes from the lab's SMA. */
static int smp_get(int fd, int agent, uint16_t lid, uint32_t tid)
{
	uint8_t buf[HDR + 256];
	struct ib_user_mad_hdr *h = (struct ib_user_mad_hdr *)buf;

	memset(buf, 0, sizeof(buf));
	h->id = (uint32_t)agent;
	h->timeout_ms = 2000;
	h->lid = htobe16(lid);
	buf[HDR] = 1;
	buf[HDR + 1] = 0x01;
	buf[HDR + 2] = 1;
	buf[HDR + 3] = 0x01;
	*(uint64_t *)(buf + HDR + 8) = htobe64(tid);
	*(uint16_t *)(buf + HDR + 16) = htobe16(0x0011);
	return write(fd, buf, sizeof(buf)) == (ssize_t)sizeof(buf) ? 0 : -1;
}

/* Read one answer and say what it is. */
static void answer(int fd, const char *label)
{
	uint8_t buf[HDR + 256];
	int n = (int)read(fd, buf, sizeof(buf));

	if (n < 0) {
		printf("%s: %s\n", label, err_name(errno));
		return;
	}
	printf("%s: read %d, method 0x%02x, status 0x%04x, tid 0x%x\n", label, n, buf[HDR + 3],
	       be16toh(*(uint16_t *)(buf + HDR + 4)),
	       (unsigned)be64toh(*(uint64_t *)(buf + HDR + 8)) & 0xffffffffu);
}

struct waiter {
	int fd, ms, rc;
	short revents;
};

static void *wait_thread(void *arg)
{
	struct waiter *w = arg;
	struct pollfd p = { .fd = w->fd, .events = POLLIN };

	w->rc = poll(&p, 1, w->ms);
	w->revents = p.revents;
	return NULL;
}

static int waits(uint16_t lid)
{
	struct pollfd p[2];
	struct waiter w;
	pthread_t t;
	int fd, agent, pipes[2], n, m;

	fd = open("/dev/infiniband/umad0", O_RDWR);
	if (fd < 0 || pipe(pipes) || ioctl(fd, IB_USER_MAD_ENABLE_PKEY, NULL))
		return 1;
	agent = reg(fd, 0, 0x01, 1, 0, NULL, 0, NULL);
	if (agent < 0)
		return 1;
	/* 1. poll() on the file alone: this thread reads the lab's socket itself; a second
	 * poll() before the read finds the message queued */
	if (smp_get(fd, agent, lid, 0x2001)) {
		printf("write: %s\n", err_name(errno));
		return 1;
	}
	p[0].fd = fd;
	p[0].events = POLLIN;
	n = poll(p, 1, 5000);
	m = poll(p, 1, 0);
	printf("poll: %d, again before reading: %d\n", n, m);
	answer(fd, "answer 1");
	/* 2. two threads polling the same file: both see the answer */
	w.fd = fd;
	w.ms = 5000;
	pthread_create(&t, NULL, wait_thread, &w);
	usleep(50000);
	smp_get(fd, agent, lid, 0x2002);
	p[0].revents = 0;
	n = poll(p, 1, 5000);
	pthread_join(t, NULL);
	printf("two pollers: %d and %d%s\n", w.rc, n, w.revents & p[0].revents & POLLIN ? ", both in" : "");
	answer(fd, "answer 2");
	/* 3. a blocking read() with nobody polling */
	smp_get(fd, agent, lid, 0x2003);
	answer(fd, "answer 3");
	/* 4. poll() on the file and a pipe */
	smp_get(fd, agent, lid, 0x2004);
	p[1].fd = pipes[0];
	p[1].events = POLLIN;
	n = poll(p, 2, 5000);
	printf("poll of two fds: %d%s\n", n, p[0].revents & POLLIN ? ", the file in" : "");
	answer(fd, "answer 4");
	/* 5. a thread cancelled in poll(): the file still answers the next poll() */
	w.ms = -1;
	pthread_create(&t, NULL, wait_thread, &w);
	usleep(50000);
	pthread_cancel(t);
	pthread_join(t, NULL);
	smp_get(fd, agent, lid, 0x2005);
	n = poll(p, 1, 5000);
	printf("after a cancelled poller: %d\n", n);
	answer(fd, "answer 5");
	/* 6. nothing sent: poll() times out */
	n = poll(p, 1, 100);
	printf("nothing sent: %d\n", n);
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 2 && !strcmp(argv[1], "checks"))
		return checks();
	if (argc == 2 && !strcmp(argv[1], "serve"))
		return serve();
	if (argc == 3 && !strcmp(argv[1], "client"))
		return client((uint16_t)strtoul(argv[2], NULL, 0));
	if (argc == 3 && !strcmp(argv[1], "waits"))
		return waits((uint16_t)strtoul(argv[2], NULL, 0));
	fprintf(stderr, "usage: umad_probe checks | serve | client PEER_LID | waits LID\n");
	return 2;
}
