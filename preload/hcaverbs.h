/*
 * What the parts of libhcaverbs share: the device and context objects behind the
 * ibv_device and ibv_context pointers a program holds, and one request on a context's
 * connection. hcaverbs.c is the control side (devices, contexts, login, DEKs), datapath.c
 * the data path (CQs, MRs, QPs, MKeys).
 */
#ifndef HCASIM_HCAVERBS_H
#define HCASIM_HCAVERBS_H

#include <pthread.h>
#include <stdint.h>

#include <infiniband/mlx5dv.h>
#include <infiniband/verbs.h>

#include "labwire.h"

#define HV_EXPORT __attribute__((visibility("default")))

/* A device of the host, as ibv_get_device_list hands it out; kept for the process's life. */
struct hv_device {
	struct ibv_device dev; /* first: ibv_device pointers are hv_device pointers */
	uint64_t node_guid;
	int index;
};

/* A verbs context: one control connection that is one device context in the daemon. */
struct hv_context {
	struct ibv_context ctx; /* first: ibv_context pointers are hv_context pointers */
	int fd;
	pthread_mutex_t lock; /* one request in flight per connection */
	struct mlx5dv_crypto_caps caps; /* read once, at open, as the provider does */
	uint32_t next_pdn;
	struct hv_device *device;
};

/* A DEK: the engine's id on the context that made it. */
struct mlx5dv_dek {
	struct hv_context *hctx;
	uint64_t id;
};

static inline struct hv_context *hctx_of(struct ibv_context *ctx)
{
	return (struct hv_context *)ctx;
}

/* One request on the context's connection; 0 or the errno to report. */
static inline int ctx_call(struct hv_context *h, struct lw_buf *req, struct lw_buf *reply)
{
	int err;

	pthread_mutex_lock(&h->lock);
	err = lw_call(h->fd, req, reply);
	pthread_mutex_unlock(&h->lock);
	return err;
}

/* Fill the context's ops table (poll_cq, post_send, post_recv: inline calls in verbs.h). */
void hv_datapath_ops(struct ibv_context *ctx);

#endif
