/*
 * verbs_crypto: the timing half of bench/verbs_crypto.py, a libibverbs / libmlx5 program run
 * on crypto1 through the verbs preload.
 *
 *   verbs_crypto CRED_ID KEK_ID CRED_FILE DEK_FILE N ROUNDS
 *
 * Prints, best of ROUNDS rounds of N operations each:
 *   login        logins per second (mlx5dv_crypto_login; the logout after each is not timed)
 *   dek_create   DEK creations per second (the destroy after each is not timed)
 *   write_512    MiB/s of RDMA WRITE through a crypto MKey, 512-byte data units
 *   write_4096   the same with 4-KiB data units
 * (one MiB per WRITE; the bytes are encrypted by the lab's device model).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <infiniband/mlx5dv.h>
#include <infiniband/verbs.h>

#define MSG (1024 * 1024)

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "%s failed: %s\n", what, strerror(errno));
	exit(1);
}

static int read_hex(const char *path, unsigned char *out, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t i;
	int ok = f != NULL;

	for (i = 0; ok && i < len; i++)
		ok = fscanf(f, "%2hhx", &out[i]) == 1;
	if (f)
		fclose(f);
	return ok ? 0 : -1;
}

struct side {
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_cq *cq;
	struct ibv_qp *qp;
	struct ibv_mr *mr;
	char *buf;
};

static void setup(struct side *s, struct ibv_device *dev)
{
	struct ibv_qp_init_attr_ex attr = {
		.qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = 16, .max_recv_wr = 16, .max_send_sge = 1,
			 .max_recv_sge = 1 },
		.comp_mask = IBV_QP_INIT_ATTR_PD | IBV_QP_INIT_ATTR_SEND_OPS_FLAGS,
		.send_ops_flags = IBV_QP_EX_WITH_RDMA_WRITE,
	};
	struct mlx5dv_qp_init_attr dv = {
		.comp_mask = MLX5DV_QP_INIT_ATTR_MASK_SEND_OPS_FLAGS,
		.send_ops_flags = MLX5DV_QP_EX_WITH_MKEY_CONFIGURE,
	};

	s->ctx = ibv_open_device(dev);
	if (!s->ctx)
		die("open");
	s->buf = calloc(1, MSG);
	s->pd = ibv_alloc_pd(s->ctx);
	s->cq = ibv_create_cq(s->ctx, 64, NULL, NULL, 0);
	s->mr = ibv_reg_mr(s->pd, s->buf, MSG, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
	if (!s->buf || !s->pd || !s->cq || !s->mr)
		die("resources");
	attr.pd = s->pd;
	attr.send_cq = attr.recv_cq = s->cq;
	s->qp = mlx5dv_create_qp(s->ctx, &attr, &dv);
	if (!s->qp)
		die("qp");
}

static void connect_to(struct side *s, uint32_t qpn)
{
	struct ibv_qp_attr a = { .qp_state = IBV_QPS_INIT, .port_num = 1 };

	ibv_modify_qp(s->qp, &a, IBV_QP_STATE | IBV_QP_PORT);
	a = (struct ibv_qp_attr){ .qp_state = IBV_QPS_RTR, .dest_qp_num = qpn };
	ibv_modify_qp(s->qp, &a, IBV_QP_STATE | IBV_QP_DEST_QPN);
	a = (struct ibv_qp_attr){ .qp_state = IBV_QPS_RTS };
	ibv_modify_qp(s->qp, &a, IBV_QP_STATE);
}

static void poll_success(struct ibv_cq *cq)
{
	struct ibv_wc wc;

	while (ibv_poll_cq(cq, 1, &wc) != 1)
		;
	if (wc.status != IBV_WC_SUCCESS) {
		fprintf(stderr, "completion status %d\n", wc.status);
		exit(1);
	}
}

static double write_rate(struct side *c, struct side *s, struct mlx5dv_dek *dek,
			 enum mlx5dv_block_size unit, int n, int rounds)
{
	struct mlx5dv_mkey_init_attr mk = {
		.pd = c->pd,
		.create_flags = MLX5DV_MKEY_INIT_ATTR_FLAGS_INDIRECT |
				MLX5DV_MKEY_INIT_ATTR_FLAGS_CRYPTO,
		.max_entries = 1,
	};
	struct mlx5dv_crypto_attr crypto = {
		.crypto_standard = MLX5DV_CRYPTO_STANDARD_AES_XTS,
		.encrypt_on_tx = 1,
		.data_unit_size = unit,
		.dek = dek,
	};
	struct ibv_qp_ex *qpx = ibv_qp_to_qp_ex(c->qp);
	struct mlx5dv_qp_ex *dv = mlx5dv_qp_ex_from_ibv_qp_ex(qpx);
	struct ibv_sge sge = { (uintptr_t)c->buf, MSG, c->mr->lkey };
	struct mlx5dv_mkey *mkey = mlx5dv_create_mkey(&mk);
	double best = 1e30;
	int r, i;

	if (!mkey)
		die("mkey");
	ibv_wr_start(qpx);
	qpx->wr_flags = IBV_SEND_SIGNALED;
	mlx5dv_wr_mkey_configure(dv, mkey, 3, &(struct mlx5dv_mkey_conf_attr){ 0 });
	mlx5dv_wr_set_mkey_access_flags(dv, IBV_ACCESS_LOCAL_WRITE);
	mlx5dv_wr_set_mkey_layout_list(dv, 1, &sge);
	mlx5dv_wr_set_mkey_crypto(dv, &crypto);
	if (ibv_wr_complete(qpx))
		die("UMR");
	poll_success(c->cq);
	for (r = 0; r < rounds; r++) {
		double start = now(), spent;

		for (i = 0; i < n; i++) {
			ibv_wr_start(qpx);
			qpx->wr_flags = IBV_SEND_SIGNALED;
			ibv_wr_rdma_write(qpx, s->mr->rkey, (uintptr_t)s->buf);
			ibv_wr_set_sge(qpx, mkey->lkey, 0, MSG);
			if (ibv_wr_complete(qpx))
				die("write");
			poll_success(c->cq);
		}
		spent = now() - start;
		if (spent < best)
			best = spent;
	}
	mlx5dv_destroy_mkey(mkey);
	return (double)n * MSG / (1024.0 * 1024.0) / best;
}

int main(int argc, char **argv)
{
	struct mlx5dv_crypto_login_attr login = { 0 };
	struct mlx5dv_dek_init_attr dek_attr = {
		.key_size = MLX5DV_CRYPTO_KEY_SIZE_128,
		.key_purpose = MLX5DV_CRYPTO_KEY_PURPOSE_AES_XTS,
	};
	unsigned char cred[48], key[40];
	struct side c = { 0 }, s = { 0 };
	struct ibv_device **list;
	struct mlx5dv_dek *dek;
	double best, spent, start;
	int n, rounds, r, i;

	if (argc != 7 || read_hex(argv[3], cred, 48) || read_hex(argv[4], key, 40))
		return 64;
	n = atoi(argv[5]);
	rounds = atoi(argv[6]);
	list = ibv_get_device_list(NULL);
	if (!list || !list[0])
		die("device list");
	setup(&c, list[0]);
	setup(&s, list[0]);
	ibv_free_device_list(list);
	connect_to(&c, s.qp->qp_num);
	connect_to(&s, c.qp->qp_num);
	login.credential_id = (uint32_t)atoi(argv[1]);
	login.import_kek_id = (uint32_t)atoi(argv[2]);
	memcpy(login.credential, cred, 48);

	for (best = 1e30, r = 0; r < rounds; r++) {
		for (spent = 0, i = 0; i < n; i++) {
			start = now();
			if (mlx5dv_crypto_login(c.ctx, &login))
				die("login");
			spent += now() - start;
			mlx5dv_crypto_logout(c.ctx);
		}
		best = spent < best ? spent : best;
	}
	printf("login %.1f\n", n / best);

	if (mlx5dv_crypto_login(c.ctx, &login))
		die("login");
	dek_attr.pd = c.pd;
	memcpy(dek_attr.key, key, 40);
	for (best = 1e30, r = 0; r < rounds; r++) {
		for (spent = 0, i = 0; i < n; i++) {
			start = now();
			dek = mlx5dv_dek_create(c.ctx, &dek_attr);
			spent += now() - start;
			if (!dek)
				die("dek_create");
			mlx5dv_dek_destroy(dek);
		}
		best = spent < best ? spent : best;
	}
	printf("dek_create %.1f\n", n / best);

	dek = mlx5dv_dek_create(c.ctx, &dek_attr);
	if (!dek)
		die("dek_create");
	printf("write_512 %.2f\n", write_rate(&c, &s, dek, MLX5DV_BLOCK_SIZE_512, 8, rounds));
	printf("write_4096 %.2f\n", write_rate(&c, &s, dek, MLX5DV_BLOCK_SIZE_4096, 8, rounds));
	mlx5dv_dek_destroy(dek);
	mlx5dv_crypto_logout(c.ctx);
	return 0;
}
