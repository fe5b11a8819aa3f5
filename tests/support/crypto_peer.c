/*
 * crypto_peer: one side of an RC connection between two lab hosts, through the verbs preload
 * (tests/test_verbs_traffic.py drives two of them, one line at a time).
 *
 *   crypto_peer server
 *     prints "qpn N rkey R addr A"; reads "peer N"; connects; prints "ready"; reads "post"
 *     (the peer has sent by then), polls once, posts a 512-byte receive, polls until the SEND
 *     is in and prints "recv STATUS LEN" and "data HEX"; reads "check" and prints "write HEX"
 *     (what the peer's RDMA WRITE put after the receive buffer; it landed at the first poll).
 *   crypto_peer client CRED_ID KEK_ID CRED_FILE DEK_FILE
 *     logs in, loads the DEK, configures an MKey that encrypts on TX over 512 bytes of 'c';
 *     prints "qpn N"; reads "peer N rkey R addr A"; connects; prints "send STATUS" for a
 *     SEND through the MKey and "write STATUS" for an RDMA WRITE through it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <infiniband/mlx5dv.h>
#include <infiniband/verbs.h>

#include "verbs_client.h"

#define HALF 512

static struct ibv_context *ctx;
static struct ibv_pd *pd;
static struct ibv_cq *cq;
static struct ibv_qp *qp;
static struct ibv_mr *mr;
static char buf[2 * HALF];

static void setup(void)
{
	struct ibv_qp_init_attr_ex attr = {
		.qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = 8, .max_recv_wr = 8, .max_send_sge = 1, .max_recv_sge = 1 },
		.comp_mask = IBV_QP_INIT_ATTR_PD | IBV_QP_INIT_ATTR_SEND_OPS_FLAGS,
		.send_ops_flags = IBV_QP_EX_WITH_SEND | IBV_QP_EX_WITH_RDMA_WRITE,
	};
	struct mlx5dv_qp_init_attr dv = {
		.comp_mask = MLX5DV_QP_INIT_ATTR_MASK_SEND_OPS_FLAGS,
		.send_ops_flags = MLX5DV_QP_EX_WITH_MKEY_CONFIGURE,
	};
	struct ibv_device **list = ibv_get_device_list(NULL);

	if (!list || !list[0])
		die("ibv_get_device_list");
	ctx = ibv_open_device(list[0]);
	ibv_free_device_list(list);
	if (!ctx)
		die("ibv_open_device");
	pd = ibv_alloc_pd(ctx);
	cq = ibv_create_cq(ctx, 16, NULL, NULL, 0);
	mr = ibv_reg_mr(pd, buf, sizeof(buf), IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
	if (!pd || !cq || !mr)
		die("resources");
	attr.pd = pd;
	attr.send_cq = attr.recv_cq = cq;
	qp = mlx5dv_create_qp(ctx, &attr, &dv);
	if (!qp)
		die("mlx5dv_create_qp");
}

static void connect_to(uint32_t remote)
{
	struct ibv_qp_attr a = { .qp_state = IBV_QPS_INIT, .port_num = 1 };

	ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PORT);
	a = (struct ibv_qp_attr){ .qp_state = IBV_QPS_RTR, .dest_qp_num = remote };
	ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_DEST_QPN);
	a = (struct ibv_qp_attr){ .qp_state = IBV_QPS_RTS };
	ibv_modify_qp(qp, &a, IBV_QP_STATE);
}

static int poll_one(struct ibv_wc *wc, int tries)
{
	while (tries--) {
		if (ibv_poll_cq(cq, 1, wc) == 1)
			return 0;
		usleep(10000);
	}
	return -1;
}

static void print_hex(const char *what, const char *data, size_t len)
{
	size_t i;

	printf("%s ", what);
	for (i = 0; i < len; i++)
		printf("%02x", (unsigned char)data[i]);
	printf("\n");
}

static int server(void)
{
	struct ibv_sge sge = { (uintptr_t)buf, HALF, 0 };
	struct ibv_recv_wr wr = { .wr_id = 1, .sg_list = &sge, .num_sge = 1 }, *bad;
	struct ibv_wc wc;
	char line[128];
	unsigned int peer;

	setup();
	sge.lkey = mr->lkey;
	printf("qpn %u rkey %u addr %llu\n", qp->qp_num, mr->rkey,
	       (unsigned long long)(uintptr_t)buf);
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin) || sscanf(line, "peer %u", &peer) != 1)
		return 64;
	connect_to(peer);
	printf("ready\n");
	fflush(stdout);
	/* the peer sends before the receive is posted: the SEND waits in this process */
	if (!fgets(line, sizeof(line), stdin))
		return 64;
	if (ibv_poll_cq(cq, 1, &wc) != 0)
		die("a completion without a receive");
	if (ibv_post_recv(qp, &wr, &bad))
		die("post_recv");
	if (poll_one(&wc, 1000))
		die("receive");
	printf("recv %d %u\n", wc.status, wc.byte_len);
	print_hex("data", buf, HALF);
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		return 64;
	ibv_poll_cq(cq, 1, &wc); /* brings in the peer's RDMA WRITE */
	print_hex("write", buf + HALF, HALF);
	return 0;
}

static int client(char **argv)
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
	struct mlx5dv_crypto_attr crypto = {
		.crypto_standard = MLX5DV_CRYPTO_STANDARD_AES_XTS,
		.encrypt_on_tx = 1,
		.data_unit_size = MLX5DV_BLOCK_SIZE_512,
	};
	unsigned char cred[48], key[40];
	struct ibv_qp_ex *qpx;
	struct mlx5dv_qp_ex *dv;
	struct mlx5dv_mkey *mkey;
	struct ibv_sge sge;
	struct ibv_wc wc;
	unsigned int peer, rkey;
	unsigned long long addr;
	char line[128];

	if (read_hex(argv[4], cred, 48) || read_hex(argv[5], key, 40))
		return 64;
	setup();
	login.credential_id = (uint32_t)atoi(argv[2]);
	login.import_kek_id = (uint32_t)atoi(argv[3]);
	memcpy(login.credential, cred, 48);
	if (mlx5dv_crypto_login(ctx, &login))
		die("login");
	dek_attr.pd = pd;
	memcpy(dek_attr.key, key, 40);
	crypto.dek = mlx5dv_dek_create(ctx, &dek_attr);
	mk.pd = pd;
	mkey = mlx5dv_create_mkey(&mk);
	if (!crypto.dek || !mkey)
		die("DEK and MKey");
	memset(buf, 'c', HALF);
	sge = (struct ibv_sge){ (uintptr_t)buf, HALF, mr->lkey };
	qpx = ibv_qp_to_qp_ex(qp);
	dv = mlx5dv_qp_ex_from_ibv_qp_ex(qpx);
	ibv_wr_start(qpx);
	qpx->wr_flags = 0;
	mlx5dv_wr_mkey_configure(dv, mkey, 3, &(struct mlx5dv_mkey_conf_attr){ 0 });
	mlx5dv_wr_set_mkey_access_flags(dv, IBV_ACCESS_LOCAL_WRITE);
	mlx5dv_wr_set_mkey_layout_list(dv, 1, &sge);
	mlx5dv_wr_set_mkey_crypto(dv, &crypto);
	if (ibv_wr_complete(qpx))
		die("UMR");

	printf("qpn %u\n", qp->qp_num);
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin) ||
	    sscanf(line, "peer %u rkey %u addr %llu", &peer, &rkey, &addr) != 3)
		return 64;
	connect_to(peer);
	ibv_wr_start(qpx);
	qpx->wr_flags = IBV_SEND_SIGNALED;
	ibv_wr_send(qpx);
	ibv_wr_set_sge(qpx, mkey->lkey, 0, HALF);
	if (ibv_wr_complete(qpx) || poll_one(&wc, 100))
		die("send");
	printf("send %d\n", wc.status);
	ibv_wr_start(qpx);
	qpx->wr_flags = IBV_SEND_SIGNALED;
	ibv_wr_rdma_write(qpx, rkey, addr + HALF);
	ibv_wr_set_sge(qpx, mkey->lkey, 0, HALF);
	if (ibv_wr_complete(qpx) || poll_one(&wc, 100))
		die("write");
	printf("write %d\n", wc.status);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "server") == 0)
		return server();
	if (argc == 6 && strcmp(argv[1], "client") == 0)
		return client(argv);
	fprintf(stderr, "usage: crypto_peer server | client CRED_ID KEK_ID CRED DEK\n");
	return 64;
}
