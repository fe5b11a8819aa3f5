/*
 * libhcaverbs: the lab's verbs devices for unmodified libibverbs / libmlx5 programs.
 *
 * `hcasim exec --host H` preloads this library beside libumad2sim. It defines the exported
 * libibverbs and libmlx5 functions a crypto client calls (docs/crypto.md §11 lists them), so
 * the program sees H's ConnectX-6 Dx devices, and only them, and each verbs context is one
 * device context of the lab daemon: its own control connection (mlx5_open), on which the
 * daemon's crypto engine keeps the context's login session, login objects and DEKs. Closing
 * the context, or the process dying, closes the connection and the daemon ends them, as the
 * kernel does when a uverbs file is released.
 *
 * Results follow the provider's conventions (docs/sources.md §13): the login calls and the
 * query and destroy calls return an errno value; the create calls return NULL and set errno.
 * Which errno is the daemon's engine's answer; nothing is checked twice here. Nothing is
 * logged or printed: credentials and keys pass through this library wrapped.
 */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <infiniband/mlx5dv.h>
#include <infiniband/verbs.h>

#include "hcaverbs.h"

#define HV_MAX_DEVICES 16

/* A login object: the engine's id on its context. */
struct mlx5dv_crypto_login_obj {
	struct hv_context *hctx;
	uint64_t id;
};

static pthread_mutex_t devices_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hv_device *devices[HV_MAX_DEVICES];
static int num_devices;

static const char *lab_host(void)
{
	const char *host = getenv("HCASIM_HOST");

	return host && *host ? host : NULL;
}

/* A device entry for name (found or added); NULL when the table is full. */
static struct hv_device *device_entry(const char *name, uint64_t guid)
{
	struct hv_device *d;
	int i;

	for (i = 0; i < num_devices; i++) {
		if (strcmp(devices[i]->dev.name, name) == 0) {
			devices[i]->node_guid = guid;
			return devices[i];
		}
	}
	if (num_devices == HV_MAX_DEVICES)
		return NULL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->dev.node_type = IBV_NODE_CA;
	d->dev.transport_type = IBV_TRANSPORT_IB;
	snprintf(d->dev.name, sizeof(d->dev.name), "%s", name);
	snprintf(d->dev.dev_name, sizeof(d->dev.dev_name), "uverbs%d", num_devices);
	snprintf(d->dev.dev_path, sizeof(d->dev.dev_path),
		 "/sys/class/infiniband_verbs/uverbs%d", num_devices);
	snprintf(d->dev.ibdev_path, sizeof(d->dev.ibdev_path), "/sys/class/infiniband/%s", name);
	d->node_guid = guid;
	d->index = num_devices;
	devices[num_devices++] = d;
	return d;
}

/* --- libibverbs: devices ----------------------------------------------------------------- */

HV_EXPORT struct ibv_device **ibv_get_device_list(int *num)
{
	struct lw_buf req = { 0 }, reply = { 0 };
	struct ibv_device **list;
	const char *host = lab_host(), *p;
	int fd, err, n = 0;

	list = calloc(HV_MAX_DEVICES + 1, sizeof(*list));
	if (!list) {
		errno = ENOMEM;
		return NULL;
	}
	if (num)
		*num = 0;
	if (!host)
		return list; /* not a lab host: no verbs device */
	fd = lw_connect(host);
	if (fd < 0) {
		err = errno;
		free(list);
		errno = err;
		return NULL;
	}
	err = lw_req_start(&req, "mlx5_devices") ? ENOMEM : lw_call(fd, &req, &reply);
	lw_close(fd);
	p = err ? NULL : lw_get(reply.data, "devices");
	if (p && *p == '[') {
		pthread_mutex_lock(&devices_lock);
		for (p++; *p == '{' && n < HV_MAX_DEVICES;) {
			int64_t guid = 0;
			char name[IBV_SYSFS_NAME_MAX] = "";
			const char *v = lw_get(p, "name"), *end;
			struct hv_device *d;

			if (v && *v == '"') {
				end = strchr(v + 1, '"');
				if (end && (size_t)(end - v - 1) < sizeof(name))
					memcpy(name, v + 1, (size_t)(end - v - 1));
			}
			lw_get_int(p, "node_guid", &guid);
			d = *name ? device_entry(name, (uint64_t)guid) : NULL;
			if (d)
				list[n++] = &d->dev;
			p = lw_skip(p);
			if (!p || *p != ',')
				break;
			p++;
		}
		pthread_mutex_unlock(&devices_lock);
	} else if (!err) {
		err = EIO;
	}
	lw_buf_free(&req);
	lw_buf_free(&reply);
	if (err) {
		free(list);
		errno = err;
		return NULL;
	}
	if (num)
		*num = n;
	return list;
}

HV_EXPORT void ibv_free_device_list(struct ibv_device **list)
{
	free(list); /* the devices stay: open contexts point at them */
}

HV_EXPORT const char *ibv_get_device_name(struct ibv_device *device)
{
	return device->name;
}

HV_EXPORT __be64 ibv_get_device_guid(struct ibv_device *device)
{
	return htobe64(((struct hv_device *)device)->node_guid);
}

HV_EXPORT int ibv_get_device_index(struct ibv_device *device)
{
	return ((struct hv_device *)device)->index;
}

static void caps_from(const char *caps, struct mlx5dv_crypto_caps *out)
{
	int64_t v;

	memset(out, 0, sizeof(*out));
	if (!caps || *caps != '{')
		return;
	if (!lw_get_int(caps, "failed_selftests", &v))
		out->failed_selftests = (uint16_t)v;
	if (!lw_get_int(caps, "crypto_engines", &v))
		out->crypto_engines = (uint8_t)v;
	if (!lw_get_int(caps, "wrapped_import_method", &v))
		out->wrapped_import_method = (uint8_t)v;
	if (!lw_get_int(caps, "log_max_num_deks", &v))
		out->log_max_num_deks = (uint8_t)v;
	if (!lw_get_int(caps, "flags", &v))
		out->flags = (uint32_t)v;
}

HV_EXPORT struct ibv_context *ibv_open_device(struct ibv_device *device)
{
	struct lw_buf req = { 0 }, reply = { 0 };
	struct hv_context *h;
	const char *host = lab_host();
	int err;

	h = calloc(1, sizeof(*h));
	if (!h) {
		errno = ENOMEM;
		return NULL;
	}
	h->fd = lw_connect(host);
	if (h->fd < 0) {
		err = errno;
		free(h);
		errno = err;
		return NULL;
	}
	err = lw_req_start(&req, "mlx5_open") || lw_req_str(&req, "device", device->name)
		      ? ENOMEM
		      : lw_call(h->fd, &req, &reply);
	if (!err)
		caps_from(lw_get(reply.data, "caps"), &h->caps);
	lw_buf_free(&req);
	lw_buf_free(&reply);
	if (err) {
		lw_close(h->fd);
		free(h);
		errno = err;
		return NULL;
	}
	pthread_mutex_init(&h->lock, NULL);
	pthread_mutex_init(&h->ctx.mutex, NULL);
	h->ctx.device = device;
	h->ctx.cmd_fd = h->fd;
	h->ctx.async_fd = -1;
	h->ctx.num_comp_vectors = 1;
	h->device = (struct hv_device *)device;
	h->next_pdn = 1;
	hv_datapath_ops(&h->ctx);
	return &h->ctx;
}

HV_EXPORT int ibv_close_device(struct ibv_context *context)
{
	struct hv_context *h = hctx_of(context);

	/* the daemon ends the context's session, login objects and DEKs with the connection */
	lw_close(h->fd);
	pthread_mutex_destroy(&h->lock);
	pthread_mutex_destroy(&h->ctx.mutex);
	free(h);
	return 0;
}

HV_EXPORT int ibv_query_device(struct ibv_context *context, struct ibv_device_attr *attr)
{
	struct hv_context *h = hctx_of(context);
	__be64 guid = htobe64(h->device->node_guid);

	memset(attr, 0, sizeof(*attr));
	snprintf(attr->fw_ver, sizeof(attr->fw_ver), "22.36.1010");
	attr->node_guid = guid;
	attr->sys_image_guid = guid;
	attr->max_mr_size = ~0ULL;
	attr->page_size_cap = 0xfffffffffffff000ULL;
	attr->vendor_id = 0x02c9;      /* Mellanox */
	attr->vendor_part_id = 0x101d; /* ConnectX-6 Dx */
	attr->hw_ver = 0;
	attr->max_qp = 1 << 17;
	attr->max_qp_wr = 1 << 15;
	attr->max_sge = 30;
	attr->max_cq = 1 << 16;
	attr->max_cqe = (1 << 22) - 1;
	attr->max_mr = 1 << 24;
	attr->max_pd = 1 << 24;
	attr->max_qp_rd_atom = 16;
	attr->max_qp_init_rd_atom = 16;
	attr->max_res_rd_atom = 1 << 21;
	attr->max_srq = 1 << 23;
	attr->max_srq_wr = (1 << 15) - 1;
	attr->max_srq_sge = 31;
	attr->max_pkeys = 128;
	attr->local_ca_ack_delay = 16;
	attr->phys_port_cnt = 1;
	return 0;
}

/* verbs.h makes ibv_query_port an inline wrapper; this is the exported function it calls */
#undef ibv_query_port
HV_EXPORT int ibv_query_port(struct ibv_context *context, uint8_t port_num,
			     struct _compat_ibv_port_attr *compat)
{
	struct ibv_port_attr *attr = (struct ibv_port_attr *)compat;

	(void)context;
	if (port_num != 1)
		return EINVAL;
	/* the legacy struct is this one up to link_layer: fill that part only */
	memset(attr, 0, offsetof(struct ibv_port_attr, link_layer) + 1);
	attr->state = IBV_PORT_ACTIVE;
	attr->max_mtu = IBV_MTU_4096;
	attr->active_mtu = IBV_MTU_4096;
	attr->gid_tbl_len = 1;
	attr->max_msg_sz = 1u << 30;
	attr->pkey_tbl_len = 128;
	attr->active_width = 2;  /* 4x */
	attr->active_speed = 64; /* HDR */
	attr->phys_state = 5;    /* LinkUp */
	attr->link_layer = IBV_LINK_LAYER_INFINIBAND;
	return 0;
}

/* --- libibverbs: protection domains ------------------------------------------------------ */

HV_EXPORT struct ibv_pd *ibv_alloc_pd(struct ibv_context *context)
{
	struct hv_context *h = hctx_of(context);
	struct ibv_pd *pd = calloc(1, sizeof(*pd));

	if (!pd) {
		errno = ENOMEM;
		return NULL;
	}
	pd->context = context;
	pthread_mutex_lock(&h->lock);
	pd->handle = h->next_pdn++;
	pthread_mutex_unlock(&h->lock);
	return pd;
}

HV_EXPORT int ibv_dealloc_pd(struct ibv_pd *pd)
{
	free(pd);
	return 0;
}

/* --- libmlx5: the device ----------------------------------------------------------------- */

HV_EXPORT bool mlx5dv_is_supported(struct ibv_device *device)
{
	(void)device;
	return true; /* every device this library lists is a ConnectX-6 Dx */
}

HV_EXPORT struct ibv_context *mlx5dv_open_device(struct ibv_device *device,
						 struct mlx5dv_context_attr *attr)
{
	(void)attr; /* DEVX and the other context flags are not modelled */
	return ibv_open_device(device);
}

HV_EXPORT int mlx5dv_query_device(struct ibv_context *context, struct mlx5dv_context *attrs)
{
	struct hv_context *h = hctx_of(context);
	uint64_t asked = attrs->comp_mask;

	attrs->version = 0;
	attrs->flags = MLX5DV_CONTEXT_FLAGS_CQE_V1;
	attrs->comp_mask = 0;
	if (asked & MLX5DV_CONTEXT_MASK_CRYPTO_OFFLOAD) {
		attrs->crypto_caps = h->caps; /* the caps cached when the context opened */
		attrs->comp_mask |= MLX5DV_CONTEXT_MASK_CRYPTO_OFFLOAD;
	}
	return 0;
}

/* --- libmlx5: crypto login --------------------------------------------------------------- */

static int login_request(struct lw_buf *req, const char *op, uint32_t credential_id,
			 uint32_t import_kek_id, const void *credential, size_t len,
			 uint64_t comp_mask)
{
	return lw_req_start(req, op) || lw_req_int(req, "credential_id", credential_id) ||
	       lw_req_int(req, "import_kek_id", import_kek_id) ||
	       lw_req_b64(req, "credential", credential, len) ||
	       lw_req_int(req, "comp_mask", comp_mask);
}

HV_EXPORT int mlx5dv_crypto_login(struct ibv_context *context,
				  struct mlx5dv_crypto_login_attr *login_attr)
{
	struct lw_buf req = { 0 }, reply = { 0 };
	int err;

	err = login_request(&req, "mlx5_crypto_login", login_attr->credential_id,
			    login_attr->import_kek_id, login_attr->credential,
			    sizeof(login_attr->credential), login_attr->comp_mask)
		      ? ENOMEM
		      : ctx_call(hctx_of(context), &req, &reply);
	lw_buf_free(&req);
	lw_buf_free(&reply);
	return err;
}

HV_EXPORT int mlx5dv_crypto_login_query_state(struct ibv_context *context,
					      enum mlx5dv_crypto_login_state *state)
{
	struct lw_buf req = { 0 }, reply = { 0 };
	int64_t value;
	int err;

	err = lw_req_start(&req, "mlx5_crypto_login_query_state")
		      ? ENOMEM
		      : ctx_call(hctx_of(context), &req, &reply);
	if (!err)
		err = lw_get_int(reply.data, "state", &value) ? EIO : 0;
	if (!err)
		*state = (enum mlx5dv_crypto_login_state)value;
	lw_buf_free(&req);
	lw_buf_free(&reply);
	return err;
}

HV_EXPORT int mlx5dv_crypto_logout(struct ibv_context *context)
{
	struct lw_buf req = { 0 }, reply = { 0 };
	int err;

	err = lw_req_start(&req, "mlx5_crypto_logout") ? ENOMEM
						       : ctx_call(hctx_of(context), &req, &reply);
	lw_buf_free(&req);
	lw_buf_free(&reply);
	return err;
}

HV_EXPORT struct mlx5dv_crypto_login_obj *
mlx5dv_crypto_login_create(struct ibv_context *context,
			   struct mlx5dv_crypto_login_attr_ex *login_attr)
{
	struct lw_buf req = { 0 }, reply = { 0 };
	struct mlx5dv_crypto_login_obj *obj = NULL;
	int64_t id;
	int err;

	err = login_request(&req, "mlx5_crypto_login_create", login_attr->credential_id,
			    login_attr->import_kek_id, login_attr->credential,
			    login_attr->credential ? login_attr->credential_len : 0,
			    login_attr->comp_mask)
		      ? ENOMEM
		      : ctx_call(hctx_of(context), &req, &reply);
	if (!err)
		err = lw_get_int(reply.data, "login", &id) ? EIO : 0;
	if (!err) {
		obj = calloc(1, sizeof(*obj));
		if (obj) {
			obj->hctx = hctx_of(context);
			obj->id = (uint64_t)id;
		} else {
			err = ENOMEM; /* the daemon drops the object with the context */
		}
	}
	lw_buf_free(&req);
	lw_buf_free(&reply);
	if (err)
		errno = err;
	return obj;
}

HV_EXPORT int mlx5dv_crypto_login_query(struct mlx5dv_crypto_login_obj *crypto_login,
					struct mlx5dv_crypto_login_query_attr *query_attr)
{
	struct lw_buf req = { 0 }, reply = { 0 };
	int64_t value;
	int err;

	err = lw_req_start(&req, "mlx5_crypto_login_query") ||
			      lw_req_int(&req, "login", crypto_login->id) ||
			      lw_req_int(&req, "comp_mask", query_attr->comp_mask)
		      ? ENOMEM
		      : ctx_call(crypto_login->hctx, &req, &reply);
	if (!err)
		err = lw_get_int(reply.data, "state", &value) ? EIO : 0;
	if (!err)
		query_attr->state = (enum mlx5dv_crypto_login_state)value;
	lw_buf_free(&req);
	lw_buf_free(&reply);
	return err;
}

HV_EXPORT int mlx5dv_crypto_login_destroy(struct mlx5dv_crypto_login_obj *crypto_login)
{
	struct lw_buf req = { 0 }, reply = { 0 };
	int err;

	err = lw_req_start(&req, "mlx5_crypto_login_destroy") ||
			      lw_req_int(&req, "login", crypto_login->id)
		      ? ENOMEM
		      : ctx_call(crypto_login->hctx, &req, &reply);
	lw_buf_free(&req);
	lw_buf_free(&reply);
	if (!err)
		free(crypto_login);
	return err;
}

/* --- libmlx5: DEKs ----------------------------------------------------------------------- */

HV_EXPORT struct mlx5dv_dek *mlx5dv_dek_create(struct ibv_context *context,
					       struct mlx5dv_dek_init_attr *init_attr)
{
	struct lw_buf req = { 0 }, reply = { 0 };
	struct mlx5dv_dek *dek = NULL;
	bool with_login = (init_attr->comp_mask & MLX5DV_DEK_INIT_ATTR_CRYPTO_LOGIN) &&
			  init_attr->crypto_login;
	int64_t id;
	int err;

	err = lw_req_start(&req, "mlx5_dek_create") ||
			      lw_req_int(&req, "key_size", (uint64_t)init_attr->key_size) ||
			      lw_req_bool(&req, "has_keytag", init_attr->has_keytag) ||
			      lw_req_int(&req, "key_purpose", (uint64_t)init_attr->key_purpose) ||
			      lw_req_int(&req, "pd", init_attr->pd ? init_attr->pd->handle : 0) ||
			      lw_req_b64(&req, "opaque", init_attr->opaque,
					 sizeof(init_attr->opaque)) ||
			      lw_req_b64(&req, "key", init_attr->key, sizeof(init_attr->key)) ||
			      lw_req_int(&req, "comp_mask", init_attr->comp_mask) ||
			      (with_login ? lw_req_int(&req, "crypto_login",
						       init_attr->crypto_login->id)
					  : lw_req_null(&req, "crypto_login"))
		      ? ENOMEM
		      : 0;
	if (!err)
		err = ctx_call(hctx_of(context), &req, &reply);
	if (!err)
		err = lw_get_int(reply.data, "dek", &id) ? EIO : 0;
	if (!err) {
		dek = calloc(1, sizeof(*dek));
		if (dek) {
			dek->hctx = hctx_of(context);
			dek->id = (uint64_t)id;
		} else {
			err = ENOMEM;
		}
	}
	lw_buf_free(&req);
	lw_buf_free(&reply);
	if (err)
		errno = err;
	return dek;
}

HV_EXPORT int mlx5dv_dek_query(struct mlx5dv_dek *dek, struct mlx5dv_dek_attr *attr)
{
	struct lw_buf req = { 0 }, reply = { 0 };
	const char *result;
	int64_t state;
	int err;

	err = lw_req_start(&req, "mlx5_dek_query") || lw_req_int(&req, "dek", dek->id) ||
			      lw_req_int(&req, "comp_mask", attr->comp_mask)
		      ? ENOMEM
		      : ctx_call(dek->hctx, &req, &reply);
	result = err ? NULL : lw_get(reply.data, "attr");
	if (!err && (!result || lw_get_int(result, "state", &state)))
		err = EIO;
	if (!err) {
		attr->state = (enum mlx5dv_dek_state)state;
		memset(attr->opaque, 0, sizeof(attr->opaque));
		if (lw_get_b64(result, "opaque", attr->opaque, sizeof(attr->opaque)) < 0)
			err = EIO;
	}
	lw_buf_free(&req);
	lw_buf_free(&reply);
	return err;
}

HV_EXPORT int mlx5dv_dek_destroy(struct mlx5dv_dek *dek)
{
	struct lw_buf req = { 0 }, reply = { 0 };
	int err;

	err = lw_req_start(&req, "mlx5_dek_destroy") || lw_req_int(&req, "dek", dek->id)
		      ? ENOMEM
		      : ctx_call(dek->hctx, &req, &reply);
	lw_buf_free(&req);
	lw_buf_free(&reply);
	if (!err)
		free(dek);
	return err;
}
