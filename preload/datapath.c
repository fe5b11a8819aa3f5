/*
 * The data path of libhcaverbs: CQs, MRs, RC QPs, crypto MKeys and the work requests that
 * rdma-core's crypto traffic tests post (docs/crypto.md §11).
 *
 * Queues live in the process. QP numbers are lab-wide (the daemon hands them out); a SEND or
 * RDMA WRITE to a QP of the same process (the two players of a test) is carried at once, one
 * to a QP elsewhere (another process, another host) goes through the daemon's relay
 * (mlx5_qp_send) and lands when the receiving process next polls a CQ of that QP
 * (mlx5_qp_fetch). A SEND or RDMA WRITE copies bytes from the sender's memory into the
 * receiver's; where an address is an
 * MKey's, the bytes cross the MKey in the lab's device model (mlx5_mkey_transfer: memory to
 * wire on the sending side, wire to memory on the receiving side), so encryption and
 * decryption happen in the daemon and the DEK never leaves it. A refusal of the engine is
 * the completion's status (keytag mismatch, a job size the engine refuses, a DEK destroyed
 * under a live MKey: docs/crypto.md §5). An MKey is configured by the UMR that
 * wr_mkey_configure and its setters build; ibv_wr_complete sends it (mlx5_mkey_configure)
 * and returns the setters' errno, as the provider does.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "hcaverbs.h"

#define HV_MAX_SGE 16
#define HV_MAX_PENDING 64

/* --- completion queues --------------------------------------------------------------------- */

struct hv_cq {
	struct ibv_cq cq; /* first */
	pthread_mutex_t lock;
	struct ibv_wc *ring;
	int cap, head, count;
};

static int cq_push(struct ibv_cq *cq, const struct ibv_wc *wc)
{
	struct hv_cq *c = (struct hv_cq *)cq;
	int err = 0;

	pthread_mutex_lock(&c->lock);
	if (c->count == c->cap)
		err = ENOSPC; /* a CQ overrun */
	else
		c->ring[(c->head + c->count++) % c->cap] = *wc;
	pthread_mutex_unlock(&c->lock);
	return err;
}

static void poll_relay(struct ibv_cq *cq);

static int hv_poll_cq(struct ibv_cq *cq, int num, struct ibv_wc *wc)
{
	struct hv_cq *c = (struct hv_cq *)cq;
	int n = 0;

	poll_relay(cq);
	pthread_mutex_lock(&c->lock);
	while (n < num && c->count) {
		wc[n++] = c->ring[c->head];
		c->head = (c->head + 1) % c->cap;
		c->count--;
	}
	pthread_mutex_unlock(&c->lock);
	return n;
}

static int hv_req_notify_cq(struct ibv_cq *cq, int solicited_only)
{
	(void)cq;
	(void)solicited_only;
	return 0;
}

HV_EXPORT struct ibv_cq *ibv_create_cq(struct ibv_context *context, int cqe, void *cq_context,
				       struct ibv_comp_channel *channel, int comp_vector)
{
	struct hv_cq *c;

	(void)comp_vector;
	if (cqe < 1 || cqe > (1 << 22)) {
		errno = EINVAL;
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (c)
		c->ring = calloc((size_t)cqe + 1, sizeof(*c->ring));
	if (!c || !c->ring) {
		free(c);
		errno = ENOMEM;
		return NULL;
	}
	c->cap = cqe + 1;
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->cq.mutex, NULL);
	pthread_cond_init(&c->cq.cond, NULL);
	c->cq.context = context;
	c->cq.channel = channel;
	c->cq.cq_context = cq_context;
	c->cq.cqe = cqe;
	return &c->cq;
}

HV_EXPORT int ibv_destroy_cq(struct ibv_cq *cq)
{
	struct hv_cq *c = (struct hv_cq *)cq;

	pthread_mutex_destroy(&c->lock);
	free(c->ring);
	free(c);
	return 0;
}

/* --- memory regions and MKeys: the process's keys ------------------------------------------ */

struct hv_mkey {
	struct mlx5dv_mkey mkey; /* first */
	struct hv_context *h;
	uint64_t id;
	/* the layout the last UMR set: one range of a memory region */
	uint64_t addr;
	uint64_t length;
};

enum { KEY_MR, KEY_MKEY };

struct hv_key {
	int kind;
	uint32_t key;
	struct ibv_mr *mr;
	struct hv_mkey *mkey;
};

static pthread_mutex_t keys_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hv_key *keys;
static size_t num_keys, cap_keys;
static uint32_t next_mr_key = 1;

static int key_add(int kind, uint32_t key, struct ibv_mr *mr, struct hv_mkey *mkey)
{
	int err = 0;

	pthread_mutex_lock(&keys_lock);
	if (num_keys == cap_keys) {
		size_t cap = cap_keys ? cap_keys * 2 : 64;
		struct hv_key *grown = realloc(keys, cap * sizeof(*keys));

		if (grown) {
			keys = grown;
			cap_keys = cap;
		} else {
			err = ENOMEM;
		}
	}
	if (!err)
		keys[num_keys++] = (struct hv_key){ kind, key, mr, mkey };
	pthread_mutex_unlock(&keys_lock);
	return err;
}

static void key_remove(uint32_t key)
{
	size_t i;

	pthread_mutex_lock(&keys_lock);
	for (i = 0; i < num_keys; i++) {
		if (keys[i].key == key) {
			keys[i] = keys[--num_keys];
			break;
		}
	}
	pthread_mutex_unlock(&keys_lock);
}

static bool key_find(uint32_t key, struct hv_key *out)
{
	bool found = false;
	size_t i;

	pthread_mutex_lock(&keys_lock);
	for (i = 0; i < num_keys && !found; i++) {
		if (keys[i].key == key) {
			*out = keys[i];
			found = true;
		}
	}
	pthread_mutex_unlock(&keys_lock);
	return found;
}

static struct ibv_mr *register_mr(struct ibv_pd *pd, void *addr, size_t length, uint64_t iova,
				  int access)
{
	struct ibv_mr *mr = calloc(1, sizeof(*mr));
	uint32_t key;

	(void)access;
	if (!mr) {
		errno = ENOMEM;
		return NULL;
	}
	pthread_mutex_lock(&keys_lock);
	/* MR keys have the top bit set: the engine's MKey keys (id << 8) never do */
	key = 0x80000000u | (next_mr_key++ << 8);
	pthread_mutex_unlock(&keys_lock);
	mr->context = pd->context;
	mr->pd = pd;
	mr->addr = addr;
	mr->length = length;
	mr->handle = key >> 8;
	mr->lkey = mr->rkey = key;
	(void)iova; /* addresses in work requests are virtual addresses of the process */
	if (key_add(KEY_MR, key, mr, NULL)) {
		free(mr);
		errno = ENOMEM;
		return NULL;
	}
	return mr;
}

#undef ibv_reg_mr
#undef ibv_reg_mr_iova
HV_EXPORT struct ibv_mr *ibv_reg_mr(struct ibv_pd *pd, void *addr, size_t length, int access)
{
	return register_mr(pd, addr, length, (uintptr_t)addr, access);
}

HV_EXPORT struct ibv_mr *ibv_reg_mr_iova(struct ibv_pd *pd, void *addr, size_t length,
					 uint64_t iova, int access)
{
	return register_mr(pd, addr, length, iova, access);
}

HV_EXPORT struct ibv_mr *ibv_reg_mr_iova2(struct ibv_pd *pd, void *addr, size_t length,
					  uint64_t iova, unsigned int access)
{
	return register_mr(pd, addr, length, iova, (int)access);
}

HV_EXPORT int ibv_dereg_mr(struct ibv_mr *mr)
{
	key_remove(mr->lkey);
	free(mr);
	return 0;
}

HV_EXPORT struct mlx5dv_mkey *mlx5dv_create_mkey(struct mlx5dv_mkey_init_attr *attr)
{
	struct hv_context *h = hctx_of(attr->pd->context);
	struct lw_buf req = { 0 }, reply = { 0 };
	struct hv_mkey *m = NULL;
	int64_t id;
	int err;

	err = lw_req_start(&req, "mlx5_mkey_create") ||
			      lw_req_int(&req, "create_flags", attr->create_flags) ||
			      lw_req_int(&req, "max_entries", attr->max_entries)
		      ? ENOMEM
		      : ctx_call(h, &req, &reply);
	if (!err)
		err = lw_get_int(reply.data, "mkey", &id) ? EIO : 0;
	if (!err) {
		m = calloc(1, sizeof(*m));
		if (!m)
			err = ENOMEM;
	}
	if (!err) {
		m->h = h;
		m->id = (uint64_t)id;
		m->mkey.lkey = m->mkey.rkey = (uint32_t)id << 8;
		err = key_add(KEY_MKEY, m->mkey.lkey, NULL, m);
		if (err) {
			free(m);
			m = NULL;
		}
	}
	lw_buf_free(&req);
	lw_buf_free(&reply);
	if (err)
		errno = err;
	return m ? &m->mkey : NULL;
}

HV_EXPORT int mlx5dv_destroy_mkey(struct mlx5dv_mkey *mkey)
{
	struct hv_mkey *m = (struct hv_mkey *)mkey;
	struct lw_buf req = { 0 }, reply = { 0 };
	int err;

	err = lw_req_start(&req, "mlx5_mkey_destroy") || lw_req_int(&req, "mkey", m->id)
		      ? ENOMEM
		      : ctx_call(m->h, &req, &reply);
	lw_buf_free(&req);
	lw_buf_free(&reply);
	if (!err) {
		key_remove(m->mkey.lkey);
		free(m);
	}
	return err;
}

/* Bytes through an MKey in the device model; 0, or the completion status of the refusal. */
static enum ibv_wc_status mkey_transfer(struct hv_mkey *m, int direction, void *data,
					size_t len, uint64_t offset)
{
	struct lw_buf req = { 0 }, reply = { 0 };
	enum ibv_wc_status status = IBV_WC_SUCCESS;
	const char *fault;
	int64_t wc;
	int err;

	err = lw_req_start(&req, "mlx5_mkey_transfer") || lw_req_int(&req, "mkey", m->id) ||
			      lw_req_int(&req, "direction", (uint64_t)direction) ||
			      lw_req_b64(&req, "data", data, len) ||
			      lw_req_int(&req, "offset", offset)
		      ? ENOMEM
		      : ctx_call(m->h, &req, &reply);
	if (err) {
		fault = reply.data ? lw_get(reply.data, "crypto_error") : NULL;
		status = fault && *fault == '{' && !lw_get_int(fault, "wc_status", &wc) && wc > 0
				 ? (enum ibv_wc_status)wc
				 : IBV_WC_LOC_PROT_ERR;
	} else if (lw_get_b64(reply.data, "data", data, len) != (long)len) {
		status = IBV_WC_GENERAL_ERR;
	}
	lw_buf_free(&req);
	lw_buf_free(&reply);
	return status;
}

/* Where len bytes at addr under key are: plain memory (*mem) or an MKey at an offset. */
static enum ibv_wc_status resolve(uint32_t key, uint64_t addr, size_t len, char **mem,
				  struct hv_mkey **mkey, uint64_t *offset)
{
	struct hv_key k;

	*mem = NULL;
	*mkey = NULL;
	if (!key_find(key, &k))
		return IBV_WC_LOC_PROT_ERR;
	if (k.kind == KEY_MR) {
		uint64_t base = (uintptr_t)k.mr->addr;

		if (addr < base || addr + len > base + k.mr->length)
			return IBV_WC_LOC_PROT_ERR;
		*mem = (char *)(uintptr_t)addr;
		return IBV_WC_SUCCESS;
	}
	if (addr + len > k.mkey->length)
		return IBV_WC_LOC_LEN_ERR;
	*mkey = k.mkey;
	*offset = addr;
	*mem = (char *)(uintptr_t)(k.mkey->addr + addr);
	return IBV_WC_SUCCESS;
}

/* --- queue pairs --------------------------------------------------------------------------- */

/* One MKey configuration (UMR) under construction between wr_mkey_configure and complete. */
struct hv_umr {
	struct hv_mkey *mkey;
	uint64_t wr_id;
	unsigned int flags;
	uint64_t addr, length;
	bool has_layout, has_crypto;
	struct mlx5dv_crypto_attr crypto;
	int err;
};

/* A work request queued by the extended API until ibv_wr_complete. */
struct hv_pending {
	bool is_umr;
	struct ibv_send_wr wr;
	struct ibv_sge sge[HV_MAX_SGE];
	struct hv_umr umr;
};

struct hv_recv {
	uint64_t wr_id;
	int num_sge;
	struct ibv_sge sge[HV_MAX_SGE];
};

struct hv_qp {
	struct ibv_qp_ex qpx; /* first: ibv_qp and ibv_qp_ex pointers are hv_qp pointers */
	void *spare_qpx[32];  /* for ibv_qp_ex members newer headers append */
	struct mlx5dv_qp_ex dv;
	void *spare_dv[32];
	struct hv_context *h;
	bool sq_sig_all;
	uint32_t dest_qpn;
	pthread_mutex_t lock;
	struct hv_recv *rq;
	int rq_cap, rq_head, rq_count;
	struct hv_pending pending[HV_MAX_PENDING];
	int num_pending;
	int wr_err;
	/* relayed SENDs that came before a receive was posted: wire bytes, oldest first */
	struct hv_inbound *backlog, *backlog_tail;
};

struct hv_inbound {
	struct hv_inbound *next;
	uint32_t src_qpn;
	size_t len;
	char data[];
};

static pthread_mutex_t qps_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hv_qp *qps[1024];

static struct hv_qp *qp_of(struct ibv_qp *qp)
{
	return (struct hv_qp *)qp;
}

static struct hv_qp *qp_by_num(uint32_t qpn)
{
	struct hv_qp *found = NULL;
	size_t i;

	pthread_mutex_lock(&qps_lock);
	for (i = 0; i < sizeof(qps) / sizeof(qps[0]) && !found; i++)
		if (qps[i] && qps[i]->qpx.qp_base.qp_num == qpn)
			found = qps[i];
	pthread_mutex_unlock(&qps_lock);
	return found;
}

static void complete(struct ibv_cq *cq, uint64_t wr_id, enum ibv_wc_status status,
		     enum ibv_wc_opcode opcode, uint32_t byte_len, uint32_t qpn, uint32_t src_qp)
{
	struct ibv_wc wc = {
		.wr_id = wr_id,
		.status = status,
		.opcode = opcode,
		.byte_len = byte_len,
		.qp_num = qpn,
		.src_qp = src_qp,
	};

	if (cq)
		cq_push(cq, &wc);
}

/* Gather a send's bytes (through MKeys: memory to wire). */
static enum ibv_wc_status gather(struct ibv_send_wr *wr, char **out, size_t *out_len)
{
	enum ibv_wc_status status = IBV_WC_SUCCESS;
	size_t total = 0, at = 0;
	char *buf;
	int i;

	for (i = 0; i < wr->num_sge; i++)
		total += wr->sg_list[i].length;
	buf = malloc(total ? total : 1);
	if (!buf)
		return IBV_WC_GENERAL_ERR;
	for (i = 0; i < wr->num_sge && status == IBV_WC_SUCCESS; i++) {
		struct ibv_sge *sge = &wr->sg_list[i];
		struct hv_mkey *mkey;
		uint64_t offset;
		char *mem;

		if (wr->send_flags & IBV_SEND_INLINE) {
			memcpy(buf + at, (void *)(uintptr_t)sge->addr, sge->length);
		} else {
			status = resolve(sge->lkey, sge->addr, sge->length, &mem, &mkey, &offset);
			if (status == IBV_WC_SUCCESS) {
				memcpy(buf + at, mem, sge->length);
				if (mkey)
					status = mkey_transfer(mkey, 0, buf + at, sge->length,
							       offset);
			}
		}
		at += sge->length;
	}
	if (status != IBV_WC_SUCCESS) {
		free(buf);
		return status;
	}
	*out = buf;
	*out_len = total;
	return status;
}

/* Store wire bytes at addr under key (through an MKey: wire to memory). */
static enum ibv_wc_status scatter_one(uint32_t key, uint64_t addr, char *data, size_t len)
{
	enum ibv_wc_status status;
	struct hv_mkey *mkey;
	uint64_t offset;
	char *mem;

	status = resolve(key, addr, len, &mem, &mkey, &offset);
	if (status == IBV_WC_SUCCESS && mkey)
		status = mkey_transfer(mkey, 1, data, len, offset);
	if (status == IBV_WC_SUCCESS)
		memcpy(mem, data, len);
	return status;
}

/* A SEND's wire bytes into the receiver's next posted receive; its completion status.
 * Returns -1 (nothing done) when no receive is posted. */
static int deliver_send(struct hv_qp *peer, uint32_t src_qpn, char *data, size_t len)
{
	enum ibv_wc_status status = IBV_WC_SUCCESS;
	struct hv_recv recv;
	size_t at = 0;
	int i;

	pthread_mutex_lock(&peer->lock);
	if (!peer->rq_count) {
		pthread_mutex_unlock(&peer->lock);
		return -1;
	}
	recv = peer->rq[peer->rq_head];
	peer->rq_head = (peer->rq_head + 1) % peer->rq_cap;
	peer->rq_count--;
	pthread_mutex_unlock(&peer->lock);
	for (i = 0; i < recv.num_sge && at < len && status == IBV_WC_SUCCESS; i++) {
		size_t n = len - at < recv.sge[i].length ? len - at : recv.sge[i].length;

		status = scatter_one(recv.sge[i].lkey, recv.sge[i].addr, data + at, n);
		at += n;
	}
	if (status == IBV_WC_SUCCESS && at < len)
		status = IBV_WC_LOC_LEN_ERR;
	complete(peer->qpx.qp_base.recv_cq, recv.wr_id, status, IBV_WC_RECV, (uint32_t)len,
		 peer->qpx.qp_base.qp_num, src_qpn);
	return status;
}

/* Hand a work request to the daemon's relay for a QP of another process. */
static enum ibv_wc_status relay(struct hv_qp *qp, struct ibv_send_wr *wr, char *data,
				size_t len)
{
	struct lw_buf req = { 0 }, reply = { 0 };
	bool write = wr->opcode == IBV_WR_RDMA_WRITE;
	int err;

	err = lw_req_start(&req, "mlx5_qp_send") ||
			      lw_req_int(&req, "qpn", qp->qpx.qp_base.qp_num) ||
			      lw_req_int(&req, "dest_qpn", qp->dest_qpn) ||
			      lw_req_str(&req, "opcode", write ? "write" : "send") ||
			      lw_req_b64(&req, "data", data, len) ||
			      lw_req_int(&req, "rkey", write ? wr->wr.rdma.rkey : 0) ||
			      lw_req_int(&req, "remote_addr", write ? wr->wr.rdma.remote_addr : 0)
		      ? ENOMEM
		      : ctx_call(qp->h, &req, &reply);
	lw_buf_free(&req);
	lw_buf_free(&reply);
	/* no such QP in the lab: the peer never answers */
	return err ? IBV_WC_RETRY_EXC_ERR : IBV_WC_SUCCESS;
}

/* One SEND or RDMA WRITE from qp; the sender's completion status. */
static enum ibv_wc_status execute(struct hv_qp *qp, struct ibv_send_wr *wr, uint32_t *len_out)
{
	struct hv_qp *peer = qp_by_num(qp->dest_qpn);
	enum ibv_wc_status status;
	size_t len = 0;
	char *data = NULL;
	int delivered;

	*len_out = 0;
	if (qp->qpx.qp_base.state != IBV_QPS_RTS)
		return IBV_WC_RETRY_EXC_ERR;
	status = gather(wr, &data, &len);
	if (status != IBV_WC_SUCCESS)
		return status;
	*len_out = (uint32_t)len;
	if (!peer) {
		status = relay(qp, wr, data, len);
		free(data);
		return status;
	}
	if (wr->opcode == IBV_WR_RDMA_WRITE) {
		status = scatter_one(wr->wr.rdma.rkey, wr->wr.rdma.remote_addr, data, len);
		free(data);
		return status == IBV_WC_SUCCESS ? status : IBV_WC_REM_ACCESS_ERR;
	}
	delivered = deliver_send(peer, qp->qpx.qp_base.qp_num, data, len);
	free(data);
	if (delivered < 0)
		return IBV_WC_RNR_RETRY_EXC_ERR;
	return delivered == IBV_WC_SUCCESS ? IBV_WC_SUCCESS : IBV_WC_REM_OP_ERR;
}

/* Deliver relayed SENDs waiting for a receive, as far as receives are posted. */
static void drain_backlog(struct hv_qp *qp)
{
	while (qp->backlog) {
		struct hv_inbound *in = qp->backlog;

		if (deliver_send(qp, in->src_qpn, in->data, in->len) < 0)
			return;
		qp->backlog = in->next;
		if (!qp->backlog)
			qp->backlog_tail = NULL;
		free(in);
	}
}

/* Fetch what the relay holds for qp: RDMA WRITEs land, SENDs join the backlog. */
static void fetch_relayed(struct hv_qp *qp)
{
	struct lw_buf req = { 0 }, reply = { 0 };
	const char *m;

	if (lw_req_start(&req, "mlx5_qp_fetch") ||
	    lw_req_int(&req, "qpn", qp->qpx.qp_base.qp_num) || ctx_call(qp->h, &req, &reply))
		goto out;
	m = lw_get(reply.data, "messages");
	if (!m || *m != '[')
		goto out;
	for (m++; *m == '{'; m++) {
		const char *data = lw_get(m, "data"), *op = lw_get(m, "opcode"), *end;
		int64_t src = 0, rkey = 0, addr = 0;
		struct hv_inbound *in;
		size_t cap;
		long len;

		end = data && *data == '"' ? strchr(data + 1, '"') : NULL;
		cap = end ? (size_t)(end - data) / 4 * 3 + 3 : 0;
		in = end ? malloc(sizeof(*in) + cap) : NULL;
		len = in ? lw_get_b64(m, "data", in->data, cap) : -1;
		lw_get_int(m, "src_qpn", &src);
		lw_get_int(m, "rkey", &rkey);
		lw_get_int(m, "remote_addr", &addr);
		if (len >= 0 && op && strncmp(op, "\"write\"", 7) == 0) {
			/* an RDMA WRITE needs no receive: it lands in memory now */
			scatter_one((uint32_t)rkey, (uint64_t)addr, in->data, (size_t)len);
			free(in);
		} else if (len >= 0) {
			in->next = NULL;
			in->src_qpn = (uint32_t)src;
			in->len = (size_t)len;
			if (qp->backlog_tail)
				qp->backlog_tail->next = in;
			else
				qp->backlog = in;
			qp->backlog_tail = in;
		} else {
			free(in);
		}
		m = lw_skip(m);
		if (!m || *m != ',')
			break;
	}
out:
	lw_buf_free(&req);
	lw_buf_free(&reply);
}

/* Before a CQ is polled: bring in what other processes sent to its QPs. */
static void poll_relay(struct ibv_cq *cq)
{
	struct hv_qp *mine[64];
	size_t i, n = 0;

	pthread_mutex_lock(&qps_lock);
	for (i = 0; i < sizeof(qps) / sizeof(qps[0]) && n < 64; i++) {
		struct hv_qp *qp = qps[i];

		if (qp && (qp->qpx.qp_base.recv_cq == cq || qp->qpx.qp_base.send_cq == cq) &&
		    qp->qpx.qp_base.state >= IBV_QPS_RTR && qp->qpx.qp_base.state <= IBV_QPS_SQD)
			mine[n++] = qp;
	}
	pthread_mutex_unlock(&qps_lock);
	for (i = 0; i < n; i++) {
		if (qp_by_num(mine[i]->dest_qpn))
			continue; /* a peer in this process delivers directly */
		fetch_relayed(mine[i]);
		drain_backlog(mine[i]);
	}
}

static int post_one(struct hv_qp *qp, struct ibv_send_wr *wr)
{
	enum ibv_wc_status status;
	uint32_t len;

	if (wr->opcode != IBV_WR_SEND && wr->opcode != IBV_WR_RDMA_WRITE)
		return EINVAL;
	if (wr->num_sge > HV_MAX_SGE)
		return EINVAL;
	status = execute(qp, wr, &len);
	if (status != IBV_WC_SUCCESS || qp->sq_sig_all || (wr->send_flags & IBV_SEND_SIGNALED))
		complete(qp->qpx.qp_base.send_cq, wr->wr_id, status,
			 wr->opcode == IBV_WR_SEND ? IBV_WC_SEND : IBV_WC_RDMA_WRITE, len,
			 qp->qpx.qp_base.qp_num, 0);
	return 0;
}

static int hv_post_send(struct ibv_qp *ibqp, struct ibv_send_wr *wr, struct ibv_send_wr **bad)
{
	struct hv_qp *qp = qp_of(ibqp);
	int err = 0;

	for (; wr; wr = wr->next) {
		err = post_one(qp, wr);
		if (err) {
			if (bad)
				*bad = wr;
			break;
		}
	}
	return err;
}

static int hv_post_recv(struct ibv_qp *ibqp, struct ibv_recv_wr *wr, struct ibv_recv_wr **bad)
{
	struct hv_qp *qp = qp_of(ibqp);
	int err = 0;

	pthread_mutex_lock(&qp->lock);
	for (; wr; wr = wr->next) {
		struct hv_recv *r;

		if (qp->rq_count == qp->rq_cap || wr->num_sge > HV_MAX_SGE || wr->num_sge < 0) {
			err = wr->num_sge > HV_MAX_SGE || wr->num_sge < 0 ? EINVAL : ENOMEM;
			if (bad)
				*bad = wr;
			break;
		}
		r = &qp->rq[(qp->rq_head + qp->rq_count++) % qp->rq_cap];
		r->wr_id = wr->wr_id;
		r->num_sge = wr->num_sge;
		memcpy(r->sge, wr->sg_list, (size_t)wr->num_sge * sizeof(*wr->sg_list));
	}
	pthread_mutex_unlock(&qp->lock);
	return err;
}

/* --- the extended send API (ibv_wr_*, mlx5dv_wr_*) ------------------------------------------ */

static struct hv_qp *qp_of_ex(struct ibv_qp_ex *qpx)
{
	return (struct hv_qp *)qpx;
}

static struct hv_qp *qp_of_dv(struct mlx5dv_qp_ex *dv)
{
	return (struct hv_qp *)((char *)dv - offsetof(struct hv_qp, dv));
}

static struct hv_pending *next_wr(struct hv_qp *qp)
{
	struct hv_pending *p;

	if (qp->num_pending == HV_MAX_PENDING) {
		qp->wr_err = ENOMEM;
		return NULL;
	}
	p = &qp->pending[qp->num_pending++];
	memset(p, 0, sizeof(*p));
	p->wr.wr_id = qp->qpx.wr_id;
	p->wr.send_flags = qp->qpx.wr_flags;
	p->wr.sg_list = p->sge;
	return p;
}

static struct hv_pending *last_wr(struct hv_qp *qp)
{
	if (!qp->num_pending) {
		qp->wr_err = EINVAL;
		return NULL;
	}
	return &qp->pending[qp->num_pending - 1];
}

static void wr_start(struct ibv_qp_ex *qpx)
{
	struct hv_qp *qp = qp_of_ex(qpx);

	qp->num_pending = 0;
	qp->wr_err = 0;
}

static void wr_abort(struct ibv_qp_ex *qpx)
{
	qp_of_ex(qpx)->num_pending = 0;
}

static void wr_send(struct ibv_qp_ex *qpx)
{
	struct hv_pending *p = next_wr(qp_of_ex(qpx));

	if (p)
		p->wr.opcode = IBV_WR_SEND;
}

static void wr_rdma_write(struct ibv_qp_ex *qpx, uint32_t rkey, uint64_t remote_addr)
{
	struct hv_pending *p = next_wr(qp_of_ex(qpx));

	if (p) {
		p->wr.opcode = IBV_WR_RDMA_WRITE;
		p->wr.wr.rdma.rkey = rkey;
		p->wr.wr.rdma.remote_addr = remote_addr;
	}
}

static void wr_set_sge_list(struct ibv_qp_ex *qpx, size_t num_sge, const struct ibv_sge *sge)
{
	struct hv_qp *qp = qp_of_ex(qpx);
	struct hv_pending *p = last_wr(qp);

	if (!p)
		return;
	if (p->is_umr || num_sge > HV_MAX_SGE) {
		qp->wr_err = EINVAL;
		return;
	}
	memcpy(p->sge, sge, num_sge * sizeof(*sge));
	p->wr.num_sge = (int)num_sge;
}

static void wr_set_sge(struct ibv_qp_ex *qpx, uint32_t lkey, uint64_t addr, uint32_t length)
{
	struct ibv_sge sge = { .addr = addr, .length = length, .lkey = lkey };

	wr_set_sge_list(qpx, 1, &sge);
}

static void wr_set_inline_data(struct ibv_qp_ex *qpx, void *addr, size_t length)
{
	struct hv_qp *qp = qp_of_ex(qpx);
	struct hv_pending *p = last_wr(qp);

	if (!p)
		return;
	p->wr.send_flags |= IBV_SEND_INLINE;
	p->sge[0] = (struct ibv_sge){ .addr = (uintptr_t)addr, .length = (uint32_t)length };
	p->wr.num_sge = 1;
}

static void wr_mkey_configure(struct mlx5dv_qp_ex *dv, struct mlx5dv_mkey *mkey,
			      uint8_t num_setters, struct mlx5dv_mkey_conf_attr *attr)
{
	struct hv_qp *qp = qp_of_dv(dv);
	struct hv_pending *p = next_wr(qp);

	(void)num_setters;
	if (!p)
		return;
	p->is_umr = true;
	p->umr.mkey = (struct hv_mkey *)mkey;
	p->umr.wr_id = qp->qpx.wr_id;
	p->umr.flags = qp->qpx.wr_flags;
	if (attr && attr->comp_mask)
		p->umr.err = EINVAL;
}

static struct hv_umr *umr_of(struct mlx5dv_qp_ex *dv)
{
	struct hv_qp *qp = qp_of_dv(dv);
	struct hv_pending *p = last_wr(qp);

	if (!p || !p->is_umr) {
		qp->wr_err = EINVAL; /* a setter without an MKey under configuration */
		return NULL;
	}
	return &p->umr;
}

static void wr_set_mkey_access_flags(struct mlx5dv_qp_ex *dv, uint32_t access_flags)
{
	(void)access_flags;
	umr_of(dv);
}

static void wr_set_mkey_layout_list(struct mlx5dv_qp_ex *dv, uint16_t num_sges,
				    const struct ibv_sge *sge)
{
	struct hv_umr *umr = umr_of(dv);
	struct hv_key k;

	if (!umr)
		return;
	/* one contiguous range of one MR (what the crypto tests lay out) */
	if (num_sges != 1 || !key_find(sge->lkey, &k) || k.kind != KEY_MR) {
		umr->err = EOPNOTSUPP;
		return;
	}
	umr->addr = sge->addr;
	umr->length = sge->length;
	umr->has_layout = true;
}

static void wr_set_mkey_unsupported(struct mlx5dv_qp_ex *dv)
{
	struct hv_umr *umr = umr_of(dv);

	if (umr)
		umr->err = EOPNOTSUPP;
}

static void wr_set_mkey_layout_interleaved(struct mlx5dv_qp_ex *dv, uint32_t repeat_count,
					   uint16_t num_interleaved,
					   const struct mlx5dv_mr_interleaved *data)
{
	(void)repeat_count;
	(void)num_interleaved;
	(void)data;
	wr_set_mkey_unsupported(dv);
}

static void wr_set_mkey_sig_block(struct mlx5dv_qp_ex *dv,
				  const struct mlx5dv_sig_block_attr *attr)
{
	(void)attr; /* T10-DIF / CRC signatures are not modelled (docs/crypto.md §11) */
	wr_set_mkey_unsupported(dv);
}

static void wr_set_mkey_crypto(struct mlx5dv_qp_ex *dv, const struct mlx5dv_crypto_attr *attr)
{
	struct hv_umr *umr = umr_of(dv);

	if (!umr)
		return;
	if (umr->has_crypto)
		umr->err = EINVAL; /* the setter twice in one WQE */
	umr->has_crypto = true;
	umr->crypto = *attr;
}

/* Send one UMR to the engine: the MKey's length and crypto properties. */
static int configure(struct hv_umr *umr)
{
	const struct mlx5dv_crypto_attr *c = &umr->crypto;
	struct lw_buf req = { 0 }, reply = { 0 };
	struct mlx5dv_dek *dek = c->dek;
	int err;

	if (umr->err)
		return umr->err;
	err = lw_req_start(&req, "mlx5_mkey_configure") ||
	      lw_req_int(&req, "mkey", umr->mkey->id) ||
	      lw_req_int(&req, "length", umr->length);
	if (!err && umr->has_crypto) {
		err = lw_req_begin(&req, "crypto") ||
		      lw_req_int(&req, "crypto_standard", (uint64_t)c->crypto_standard) ||
		      lw_req_bool(&req, "encrypt_on_tx", c->encrypt_on_tx) ||
		      lw_req_int(&req, "signature_crypto_order",
				 (uint64_t)c->signature_crypto_order) ||
		      lw_req_int(&req, "data_unit_size", (uint64_t)c->data_unit_size) ||
		      lw_req_b64(&req, "initial_tweak", c->initial_tweak,
				 sizeof(c->initial_tweak)) ||
		      /* a DEK of no context of this process: an id the engine does not know */
		      lw_req_int(&req, "dek", dek ? dek->id : 0xffffffffu) ||
		      lw_req_b64(&req, "keytag", c->keytag, sizeof(c->keytag)) ||
		      lw_req_int(&req, "comp_mask", c->comp_mask) || lw_req_end(&req);
	} else if (!err) {
		err = lw_req_null(&req, "crypto");
	}
	err = err ? ENOMEM : ctx_call(umr->mkey->h, &req, &reply);
	lw_buf_free(&req);
	lw_buf_free(&reply);
	if (!err) {
		umr->mkey->addr = umr->addr;
		umr->mkey->length = umr->length;
	}
	return err;
}

static int wr_complete(struct ibv_qp_ex *qpx)
{
	struct hv_qp *qp = qp_of_ex(qpx);
	int i, err = qp->wr_err;

	for (i = 0; i < qp->num_pending && !err; i++) {
		struct hv_pending *p = &qp->pending[i];

		if (!p->is_umr) {
			err = post_one(qp, &p->wr);
			continue;
		}
		err = configure(&p->umr);
		if (!err && (qp->sq_sig_all || (p->umr.flags & IBV_SEND_SIGNALED)))
			complete(qp->qpx.qp_base.send_cq, p->umr.wr_id, IBV_WC_SUCCESS,
				 IBV_WC_DRIVER1, 0, qp->qpx.qp_base.qp_num, 0);
	}
	qp->num_pending = 0;
	qp->wr_err = 0;
	return err;
}

/* --- QP life --------------------------------------------------------------------------------- */

static struct ibv_qp *create_qp(struct ibv_context *context, struct ibv_qp_init_attr_ex *attr)
{
	struct lw_buf req = { 0 }, reply = { 0 };
	struct hv_qp *qp;
	int64_t qpn;
	size_t i;
	int err;

	if (attr->qp_type != IBV_QPT_RC) {
		errno = EOPNOTSUPP; /* RC only: what the crypto traffic tests use */
		return NULL;
	}
	qp = calloc(1, sizeof(*qp));
	if (qp) {
		qp->rq_cap = attr->cap.max_recv_wr ? (int)attr->cap.max_recv_wr : 1;
		qp->rq = calloc((size_t)qp->rq_cap, sizeof(*qp->rq));
	}
	if (!qp || !qp->rq) {
		free(qp);
		errno = ENOMEM;
		return NULL;
	}
	pthread_mutex_init(&qp->lock, NULL);
	pthread_mutex_init(&qp->qpx.qp_base.mutex, NULL);
	pthread_cond_init(&qp->qpx.qp_base.cond, NULL);
	qp->h = hctx_of(context);
	qp->sq_sig_all = attr->sq_sig_all;
	qp->qpx.qp_base.context = context;
	qp->qpx.qp_base.qp_context = attr->qp_context;
	qp->qpx.qp_base.pd = attr->pd;
	qp->qpx.qp_base.send_cq = attr->send_cq;
	qp->qpx.qp_base.recv_cq = attr->recv_cq;
	qp->qpx.qp_base.srq = attr->srq;
	qp->qpx.qp_base.qp_type = attr->qp_type;
	qp->qpx.qp_base.state = IBV_QPS_RESET;
	qp->qpx.wr_start = wr_start;
	qp->qpx.wr_complete = wr_complete;
	qp->qpx.wr_abort = wr_abort;
	qp->qpx.wr_send = wr_send;
	qp->qpx.wr_rdma_write = wr_rdma_write;
	qp->qpx.wr_set_sge = wr_set_sge;
	qp->qpx.wr_set_sge_list = wr_set_sge_list;
	qp->qpx.wr_set_inline_data = wr_set_inline_data;
	qp->dv.wr_mkey_configure = wr_mkey_configure;
	qp->dv.wr_set_mkey_access_flags = wr_set_mkey_access_flags;
	qp->dv.wr_set_mkey_layout_list = wr_set_mkey_layout_list;
	qp->dv.wr_set_mkey_layout_interleaved = wr_set_mkey_layout_interleaved;
	qp->dv.wr_set_mkey_sig_block = wr_set_mkey_sig_block;
	qp->dv.wr_set_mkey_crypto = wr_set_mkey_crypto;
	err = lw_req_start(&req, "mlx5_qp_create") ? ENOMEM : ctx_call(qp->h, &req, &reply);
	if (!err)
		err = lw_get_int(reply.data, "qpn", &qpn) ? EIO : 0;
	lw_buf_free(&req);
	lw_buf_free(&reply);
	if (!err) {
		err = ENOMEM;
		pthread_mutex_lock(&qps_lock);
		for (i = 0; i < sizeof(qps) / sizeof(qps[0]) && qps[i]; i++)
			;
		if (i < sizeof(qps) / sizeof(qps[0])) {
			qp->qpx.qp_base.qp_num = (uint32_t)qpn;
			qp->qpx.qp_base.handle = (uint32_t)qpn;
			qps[i] = qp;
			err = 0;
		}
		pthread_mutex_unlock(&qps_lock);
	}
	if (err) {
		free(qp->rq);
		free(qp);
		errno = err;
		return NULL;
	}
	return &qp->qpx.qp_base;
}

HV_EXPORT struct ibv_qp *mlx5dv_create_qp(struct ibv_context *context,
					  struct ibv_qp_init_attr_ex *attr,
					  struct mlx5dv_qp_init_attr *dv_attr)
{
	(void)dv_attr; /* MKey configuration is always available */
	return create_qp(context, attr);
}

HV_EXPORT struct ibv_qp *ibv_create_qp(struct ibv_pd *pd, struct ibv_qp_init_attr *attr)
{
	struct ibv_qp_init_attr_ex ex = {
		.qp_context = attr->qp_context,
		.send_cq = attr->send_cq,
		.recv_cq = attr->recv_cq,
		.srq = attr->srq,
		.cap = attr->cap,
		.qp_type = attr->qp_type,
		.sq_sig_all = attr->sq_sig_all,
		.comp_mask = IBV_QP_INIT_ATTR_PD,
		.pd = pd,
	};

	return create_qp(pd->context, &ex);
}

HV_EXPORT struct ibv_qp_ex *ibv_qp_to_qp_ex(struct ibv_qp *qp)
{
	return &qp_of(qp)->qpx;
}

HV_EXPORT struct mlx5dv_qp_ex *mlx5dv_qp_ex_from_ibv_qp_ex(struct ibv_qp_ex *qpx)
{
	return &qp_of_ex(qpx)->dv;
}

HV_EXPORT int ibv_modify_qp(struct ibv_qp *ibqp, struct ibv_qp_attr *attr, int mask)
{
	struct hv_qp *qp = qp_of(ibqp);

	if (mask & IBV_QP_DEST_QPN)
		qp->dest_qpn = attr->dest_qp_num;
	if (mask & IBV_QP_STATE)
		ibqp->state = attr->qp_state;
	return 0;
}

HV_EXPORT int ibv_query_qp(struct ibv_qp *ibqp, struct ibv_qp_attr *attr, int mask,
			   struct ibv_qp_init_attr *init_attr)
{
	struct hv_qp *qp = qp_of(ibqp);

	(void)mask;
	memset(attr, 0, sizeof(*attr));
	attr->qp_state = ibqp->state;
	attr->cur_qp_state = ibqp->state;
	attr->dest_qp_num = qp->dest_qpn;
	attr->port_num = 1;
	attr->cap.max_recv_wr = (uint32_t)qp->rq_cap;
	if (init_attr) {
		memset(init_attr, 0, sizeof(*init_attr));
		init_attr->send_cq = ibqp->send_cq;
		init_attr->recv_cq = ibqp->recv_cq;
		init_attr->qp_type = ibqp->qp_type;
		init_attr->cap = attr->cap;
		init_attr->sq_sig_all = qp->sq_sig_all;
	}
	return 0;
}

HV_EXPORT int ibv_destroy_qp(struct ibv_qp *ibqp)
{
	struct lw_buf req = { 0 }, reply = { 0 };
	struct hv_qp *qp = qp_of(ibqp);
	size_t i;

	if (!lw_req_start(&req, "mlx5_qp_destroy") && !lw_req_int(&req, "qpn", ibqp->qp_num))
		ctx_call(qp->h, &req, &reply); /* a dead daemon has forgotten the QP anyway */
	lw_buf_free(&req);
	lw_buf_free(&reply);
	while (qp->backlog) {
		struct hv_inbound *in = qp->backlog;

		qp->backlog = in->next;
		free(in);
	}

	pthread_mutex_lock(&qps_lock);
	for (i = 0; i < sizeof(qps) / sizeof(qps[0]); i++)
		if (qps[i] == qp)
			qps[i] = NULL;
	pthread_mutex_unlock(&qps_lock);
	pthread_mutex_destroy(&qp->lock);
	free(qp->rq);
	free(qp);
	return 0;
}

HV_EXPORT int ibv_query_gid(struct ibv_context *context, uint8_t port_num, int index,
			    union ibv_gid *gid)
{
	struct hv_context *h = hctx_of(context);

	if (port_num != 1 || index != 0)
		return EINVAL;
	/* the link-local GID of the port: fe80::/64 and the port GUID */
	memset(gid, 0, sizeof(*gid));
	gid->raw[0] = 0xfe;
	gid->raw[1] = 0x80;
	gid->global.interface_id = htobe64(h->device->node_guid);
	return 0;
}

void hv_datapath_ops(struct ibv_context *ctx)
{
	ctx->ops.poll_cq = hv_poll_cq;
	ctx->ops.req_notify_cq = hv_req_notify_cq;
	ctx->ops.post_send = hv_post_send;
	ctx->ops.post_recv = hv_post_recv;
}
