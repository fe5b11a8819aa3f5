/*
 * crypto_traffic: RC traffic through crypto MKeys with the real libibverbs / libmlx5 API, on
 * a lab host through the verbs preload (tests/test_verbs_traffic.py runs it).
 *
 * Two contexts of one device (client and server), an RC QP each, connected. The client logs
 * in, loads a DEK and configures two MKeys by UMR over halves of its MR: one that encrypts
 * on TX, one that decrypts on TX. Then: a SEND of 512 plaintext bytes through the first
 * (the server receives ciphertext, printed in hex), the ciphertext sent back through the
 * second (the server receives the plaintext), an RDMA WRITE through the first, and the error
 * completions: a job size the engine refuses, a keytag that does not match the DEK's, a
 * setter the provider refuses at wr_complete, a DEK destroyed under a live MKey.
 *
 * Arguments: CRED_ID KEK_ID CRED_FILE DEK_FILE DEK_KEYTAG_FILE (hex: the wrapped credential,
 * a wrapped 2 x 128-bit key, the same key with keytag 0102030405060708 wrapped). Prints one
 * "step: value" line each; exits 1 at the first failure of the plumbing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <infiniband/mlx5dv.h>
#include <infiniband/verbs.h>

#include "verbs_client.h"

#define HALF 512

struct player {
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_cq *cq;
	struct ibv_qp *qp;
	struct ibv_mr *mr;
	char buf[4 * HALF];
};

static void setup(struct player *p, struct ibv_device *dev)
{
	struct ibv_qp_init_attr_ex attr = {
		.qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = 16, .max_recv_wr = 16, .max_send_sge = 1,
			 .max_recv_sge = 1, .max_inline_data = 512 },
		.comp_mask = IBV_QP_INIT_ATTR_PD | IBV_QP_INIT_ATTR_SEND_OPS_FLAGS,
		.send_ops_flags = IBV_QP_EX_WITH_SEND | IBV_QP_EX_WITH_RDMA_WRITE,
	};
	struct mlx5dv_qp_init_attr dv = {
		.comp_mask = MLX5DV_QP_INIT_ATTR_MASK_SEND_OPS_FLAGS,
		.send_ops_flags = MLX5DV_QP_EX_WITH_MKEY_CONFIGURE,
	};

	p->ctx = mlx5dv_open_device(dev, &(struct mlx5dv_context_attr){ 0 });
	if (!p->ctx)
		die("open");
	p->pd = ibv_alloc_pd(p->ctx);
	p->cq = ibv_create_cq(p->ctx, 32, NULL, NULL, 0);
	p->mr = ibv_reg_mr(p->pd, p->buf, sizeof(p->buf),
			   IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
	if (!p->pd || !p->cq || !p->mr)
		die("resources");
	attr.pd = p->pd;
	attr.send_cq = attr.recv_cq = p->cq;
	p->qp = mlx5dv_create_qp(p->ctx, &attr, &dv);
	if (!p->qp)
		die("mlx5dv_create_qp");
}

static void connect_to(struct player *p, uint32_t remote_qpn)
{
	struct ibv_qp_attr a = { .qp_state = IBV_QPS_INIT, .port_num = 1,
				 .qp_access_flags = IBV_ACCESS_REMOTE_WRITE };

	if (ibv_modify_qp(p->qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT |
					     IBV_QP_ACCESS_FLAGS))
		die("INIT");
	a = (struct ibv_qp_attr){ .qp_state = IBV_QPS_RTR, .path_mtu = IBV_MTU_1024,
				  .dest_qp_num = remote_qpn, .max_dest_rd_atomic = 1,
				  .min_rnr_timer = 12, .ah_attr = { .dlid = 1, .port_num = 1 } };
	if (ibv_modify_qp(p->qp, &a, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU |
					     IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
					     IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER))
		die("RTR");
	a = (struct ibv_qp_attr){ .qp_state = IBV_QPS_RTS, .timeout = 14, .retry_cnt = 7,
				  .rnr_retry = 7, .max_rd_atomic = 1 };
	if (ibv_modify_qp(p->qp, &a, IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
					     IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC))
		die("RTS");
}

/* One completion; its status (-1 when none came). */
static int poll_one(struct ibv_cq *cq, struct ibv_wc *wc)
{
	int i;

	for (i = 0; i < 1000; i++)
		if (ibv_poll_cq(cq, 1, wc) == 1)
			return wc->status;
	return -1;
}

/* Configure mkey over len bytes of the client's MR at off; wr_complete's result. */
static int configure(struct player *c, struct mlx5dv_mkey *mkey, size_t off, uint32_t len,
		     struct mlx5dv_dek *dek, int encrypt_on_tx, const char *keytag,
		     enum mlx5dv_block_size unit)
{
	struct ibv_qp_ex *qpx = ibv_qp_to_qp_ex(c->qp);
	struct mlx5dv_qp_ex *dv = mlx5dv_qp_ex_from_ibv_qp_ex(qpx);
	struct ibv_sge sge = { (uintptr_t)c->buf + off, len, c->mr->lkey };
	struct mlx5dv_crypto_attr crypto = {
		.crypto_standard = MLX5DV_CRYPTO_STANDARD_AES_XTS,
		.encrypt_on_tx = encrypt_on_tx,
		.signature_crypto_order =
			MLX5DV_SIGNATURE_CRYPTO_ORDER_SIGNATURE_AFTER_CRYPTO_ON_TX,
		.data_unit_size = unit,
		.dek = dek,
	};
	struct ibv_wc wc;
	int rc;

	if (keytag)
		memcpy(crypto.keytag, keytag, 8);
	ibv_wr_start(qpx);
	qpx->wr_id = 7;
	qpx->wr_flags = IBV_SEND_SIGNALED | IBV_SEND_INLINE;
	mlx5dv_wr_mkey_configure(dv, mkey, 3, &(struct mlx5dv_mkey_conf_attr){ 0 });
	mlx5dv_wr_set_mkey_access_flags(dv, IBV_ACCESS_LOCAL_WRITE);
	mlx5dv_wr_set_mkey_layout_list(dv, 1, &sge);
	mlx5dv_wr_set_mkey_crypto(dv, &crypto);
	rc = ibv_wr_complete(qpx);
	if (!rc && (poll_one(c->cq, &wc) != IBV_WC_SUCCESS || wc.opcode != IBV_WC_DRIVER1))
		die("UMR completion");
	return rc;
}

/* A SEND of len bytes at addr under lkey; the sender's completion status. */
static int send_through(struct player *c, struct player *s, uint32_t lkey, uint64_t addr,
			uint32_t len, size_t recv_off)
{
	struct ibv_sge rsge = { (uintptr_t)s->buf + recv_off, HALF, s->mr->lkey };
	struct ibv_recv_wr rwr = { .wr_id = 2, .sg_list = &rsge, .num_sge = 1 }, *rbad;
	struct ibv_sge sge = { addr, len, lkey };
	struct ibv_send_wr wr = { .wr_id = 1, .sg_list = &sge, .num_sge = 1,
				  .opcode = IBV_WR_SEND, .send_flags = IBV_SEND_SIGNALED }, *bad;
	struct ibv_wc wc;
	int status;

	if (ibv_post_recv(s->qp, &rwr, &rbad) || ibv_post_send(c->qp, &wr, &bad))
		die("post");
	status = poll_one(c->cq, &wc);
	if (status == IBV_WC_SUCCESS && poll_one(s->cq, &wc) != IBV_WC_SUCCESS)
		die("receive");
	return status;
}

static void print_hex(const char *step, const char *data, size_t len)
{
	size_t i;

	printf("%s: ", step);
	for (i = 0; i < len; i++)
		printf("%02x", (unsigned char)data[i]);
	printf("\n");
}

/* The rest of the preload's surface: plain QPs, inline data, RNR, unknown peers, aborted and
 * unsupported work requests, MRs with an IOVA. */
static void extras(struct player *c, struct player *s, struct mlx5dv_mkey *mkey)
{
	struct ibv_qp_ex *qpx = ibv_qp_to_qp_ex(c->qp);
	struct mlx5dv_qp_ex *dv = mlx5dv_qp_ex_from_ibv_qp_ex(qpx);
	struct mlx5dv_mr_interleaved il = { (uintptr_t)c->buf, 16, 16, c->mr->lkey };
	struct ibv_qp_init_attr init = { .send_cq = c->cq, .recv_cq = c->cq, .qp_type = IBV_QPT_RC,
					 .cap = { .max_send_wr = 1, .max_recv_wr = 1 } }, got;
	struct ibv_sge rsge = { (uintptr_t)s->buf + 3 * HALF, HALF, s->mr->lkey };
	struct ibv_recv_wr rwr = { .wr_id = 5, .sg_list = &rsge, .num_sge = 1 }, *rbad;
	char text[] = "inline bytes";
	struct ibv_sge sge = { (uintptr_t)text, sizeof(text), 0 };
	struct ibv_send_wr wr = { .wr_id = 6, .sg_list = &sge, .num_sge = 1, .opcode = IBV_WR_SEND,
				  .send_flags = IBV_SEND_SIGNALED | IBV_SEND_INLINE }, *bad;
	struct ibv_qp_attr attr;
	struct ibv_qp *plain;
	struct ibv_mr *mr;
	struct ibv_wc wc;
	int n;

	/* SENDs until no receive is left (the failed SENDs above left theirs posted) */
	wr.send_flags = IBV_SEND_SIGNALED;
	sge = (struct ibv_sge){ (uintptr_t)c->buf, 16, c->mr->lkey };
	do {
		if (ibv_post_send(c->qp, &wr, &bad))
			die("rnr post");
		n = poll_one(c->cq, &wc);
		if (n == IBV_WC_SUCCESS)
			poll_one(s->cq, &wc);
	} while (n == IBV_WC_SUCCESS);
	printf("no receive posted: %d\n", n);
	/* a SEND of inline data by ibv_post_send */
	wr.send_flags = IBV_SEND_SIGNALED | IBV_SEND_INLINE;
	sge = (struct ibv_sge){ (uintptr_t)text, sizeof(text), 0 };
	if (ibv_post_recv(s->qp, &rwr, &rbad) || ibv_post_send(c->qp, &wr, &bad))
		die("inline post");
	n = poll_one(c->cq, &wc);
	printf("inline: %d %s\n", n,
	       poll_one(s->cq, &wc) == 0 && !strcmp(s->buf + 3 * HALF, text) ? "same" : "different");
	wr.send_flags = IBV_SEND_SIGNALED;
	sge = (struct ibv_sge){ (uintptr_t)c->buf, 16, c->mr->lkey };
	/* an aborted work request never completes */
	ibv_wr_start(qpx);
	ibv_wr_send(qpx);
	ibv_wr_set_sge(qpx, c->mr->lkey, (uintptr_t)c->buf, 16);
	ibv_wr_abort(qpx);
	printf("aborted: %d\n", ibv_poll_cq(c->cq, 1, &wc));
	/* an interleaved layout is not modelled */
	ibv_wr_start(qpx);
	mlx5dv_wr_mkey_configure(dv, mkey, 2, &(struct mlx5dv_mkey_conf_attr){ 0 });
	mlx5dv_wr_set_mkey_layout_interleaved(dv, 1, 1, &il);
	printf("interleaved layout: %d\n", ibv_wr_complete(qpx));
	/* ibv_create_qp and ibv_query_qp; a QP connected to a number no QP has */
	init.cap.max_recv_wr = 1;
	plain = ibv_create_qp(c->pd, &init);
	if (!plain || ibv_query_qp(plain, &attr, IBV_QP_STATE, &got))
		die("ibv_create_qp");
	printf("plain qp: state %d type %d\n", attr.qp_state, got.qp_type);
	c->qp = plain;
	connect_to(c, 0xfffffe);
	sge = (struct ibv_sge){ (uintptr_t)c->buf, 16, c->mr->lkey };
	if (ibv_post_send(plain, &wr, &bad))
		die("post to nobody");
	printf("unknown peer: %d\n", poll_one(c->cq, &wc));
	c->qp = &qpx->qp_base;
	ibv_destroy_qp(plain);
	/* an MR with an IOVA and an optional access flag (ibv_reg_mr_iova2) */
	mr = ibv_reg_mr_iova(c->pd, c->buf, HALF, 0x1000,
			     IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_RELAXED_ORDERING);
	printf("iova mr: %s\n", mr ? "0" : strerror(errno));
	if (mr)
		ibv_dereg_mr(mr);
}

int main(int argc, char **argv)
{
	struct mlx5dv_crypto_login_attr login = { 0 };
	struct mlx5dv_dek_init_attr dek_attr = {
		.key_size = MLX5DV_CRYPTO_KEY_SIZE_128,
		.key_purpose = MLX5DV_CRYPTO_KEY_PURPOSE_AES_XTS,
	};
	struct mlx5dv_mkey_init_attr mk = {
		.create_flags = MLX5DV_MKEY_INIT_ATTR_FLAGS_INDIRECT |
				MLX5DV_MKEY_INIT_ATTR_FLAGS_CRYPTO,
		.max_entries = 1,
	};
	unsigned char cred[48], key[40], key_tagged[48];
	struct mlx5dv_mkey *wire_enc, *mem_enc, *tagged;
	struct mlx5dv_dek *dek, *dek_tagged;
	struct player *c = calloc(1, sizeof(*c)), *s = calloc(1, sizeof(*s));
	struct ibv_device **list;
	struct ibv_qp_ex *qpx;
	struct ibv_wc wc;
	int num;

	if (argc != 6 || read_hex(argv[3], cred, 48) || read_hex(argv[4], key, 40) ||
	    read_hex(argv[5], key_tagged, 48))
		return 64;
	list = ibv_get_device_list(&num);
	if (!list || num < 1)
		die("ibv_get_device_list");
	setup(c, list[0]);
	setup(s, list[0]);
	ibv_free_device_list(list);
	connect_to(c, s->qp->qp_num);
	connect_to(s, c->qp->qp_num);

	login.credential_id = (uint32_t)strtoul(argv[1], NULL, 0);
	login.import_kek_id = (uint32_t)strtoul(argv[2], NULL, 0);
	memcpy(login.credential, cred, 48);
	if (mlx5dv_crypto_login(c->ctx, &login))
		die("login");
	dek_attr.pd = c->pd;
	memcpy(dek_attr.key, key, 40);
	dek = mlx5dv_dek_create(c->ctx, &dek_attr);
	dek_attr.has_keytag = true;
	memcpy(dek_attr.key, key_tagged, 48);
	dek_tagged = mlx5dv_dek_create(c->ctx, &dek_attr);
	mk.pd = c->pd;
	wire_enc = mlx5dv_create_mkey(&mk);
	mem_enc = mlx5dv_create_mkey(&mk);
	tagged = mlx5dv_create_mkey(&mk);
	if (!dek || !dek_tagged || !wire_enc || !mem_enc || !tagged)
		die("DEKs and MKeys");

	printf("configure wire_enc: %d\n",
	       configure(c, wire_enc, 0, HALF, dek, 1, NULL, MLX5DV_BLOCK_SIZE_512));
	printf("configure mem_enc: %d\n",
	       configure(c, mem_enc, HALF, HALF, dek, 0, NULL, MLX5DV_BLOCK_SIZE_512));

	/* plaintext out through the encrypting MKey: ciphertext on the wire */
	memset(c->buf, 'c', HALF);
	printf("send wire_enc: %d\n", send_through(c, s, wire_enc->lkey, 0, HALF, 0));
	print_hex("received", s->buf, HALF);
	/* the ciphertext back through the decrypting MKey: plaintext on the wire */
	memcpy(c->buf + HALF, s->buf, HALF);
	printf("send mem_enc: %d\n", send_through(c, s, mem_enc->lkey, 0, HALF, HALF));
	printf("decrypted: %s\n", memcmp(s->buf + HALF, c->buf, HALF) ? "different" : "same");

	/* RDMA WRITE through the encrypting MKey, by the extended API */
	qpx = ibv_qp_to_qp_ex(c->qp);
	memset(s->buf + 2 * HALF, 0, HALF);
	ibv_wr_start(qpx);
	qpx->wr_id = 9;
	qpx->wr_flags = IBV_SEND_SIGNALED;
	ibv_wr_rdma_write(qpx, s->mr->rkey, (uintptr_t)s->buf + 2 * HALF);
	ibv_wr_set_sge(qpx, wire_enc->lkey, 0, HALF);
	printf("rdma_write complete: %d\n", ibv_wr_complete(qpx));
	num = poll_one(c->cq, &wc);
	printf("rdma_write status: %d opcode %d\n", num, wc.opcode);
	printf("written: %s\n", memcmp(s->buf + 2 * HALF, s->buf, HALF) ? "different" : "same");

	/* error completions and refusals */
	printf("job size 47: %d\n", send_through(c, s, wire_enc->lkey, 0, 47, 0));
	configure(c, tagged, 0, HALF, dek_tagged, 1, "\x01\x02\x03\x04\x05\x06\x07\x08",
		  MLX5DV_BLOCK_SIZE_512);
	printf("keytag match: %d\n", send_through(c, s, tagged->lkey, 0, HALF, 0));
	configure(c, tagged, 0, HALF, dek_tagged, 1, "\x01\x02\x03\x04\x05\x06\x07\x09",
		  MLX5DV_BLOCK_SIZE_512);
	printf("keytag mismatch: %d\n", send_through(c, s, tagged->lkey, 0, HALF, 0));
	printf("bad data unit size: %d\n",
	       configure(c, tagged, 0, HALF, dek, 1, NULL, (enum mlx5dv_block_size)7));
	if (mlx5dv_dek_destroy(dek))
		die("dek_destroy");
	printf("dek destroyed: %d\n", send_through(c, s, wire_enc->lkey, 0, HALF, 0));

	extras(c, s, tagged);

	mlx5dv_destroy_mkey(wire_enc);
	mlx5dv_destroy_mkey(mem_enc);
	mlx5dv_destroy_mkey(tagged);
	mlx5dv_dek_destroy(dek_tagged);
	mlx5dv_crypto_logout(c->ctx);
	ibv_destroy_qp(c->qp);
	ibv_destroy_qp(s->qp);
	ibv_dereg_mr(c->mr);
	ibv_dereg_mr(s->mr);
	ibv_destroy_cq(c->cq);
	ibv_destroy_cq(s->cq);
	ibv_dealloc_pd(c->pd);
	ibv_dealloc_pd(s->pd);
	ibv_close_device(c->ctx);
	ibv_close_device(s->ctx);
	printf("ok\n");
	return 0;
}
