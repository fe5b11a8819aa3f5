/*
 * mlx5_crypto_login: the crypto login sequence of mlx5dv_crypto_login(3) with every errno
 * of its man page, and a DEK created inside a session and used outside it.
 *
 * Used outside the session: the DEK encrypts and decrypts through two crypto MKeys after
 * the logout, with a QP that sends to itself.
 *
 * An ordinary libibverbs / libmlx5 program: build it against the rdma-core headers and run
 * it on a lab host (docs/crypto.md §11):
 *
 *   cc -o mlx5_crypto_login mlx5_crypto_login.c -libverbs -lmlx5
 *   hcasim exec --host crypto1 -- ./mlx5_crypto_login 1 1 cred.wrapped.hex dek.wrapped.hex
 *
 * Arguments: the credential id and import KEK id the officer gave, a file with the 48-byte
 * credential wrapped under that KEK (hex), and a file with a 2 x 128-bit XTS key wrapped under
 * it (40 bytes, hex). Each step prints its name and the result (an errno name or a state);
 * a step whose result is not what the man page says makes the program exit 1, a refused
 * login exits 2 with the errno. No secret is printed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <infiniband/mlx5dv.h>
#include <infiniband/verbs.h>

static int failures;

static const char *errname(int err)
{
	switch (err) {
	case 0: return "0";
	case EINVAL: return "EINVAL";
	case EEXIST: return "EEXIST";
	case ENOENT: return "ENOENT";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EIO: return "EIO";
	default: return "other";
	}
}

static const char *statename(enum mlx5dv_crypto_login_state state)
{
	switch (state) {
	case MLX5DV_CRYPTO_LOGIN_STATE_VALID: return "VALID";
	case MLX5DV_CRYPTO_LOGIN_STATE_NO_LOGIN: return "NO_LOGIN";
	case MLX5DV_CRYPTO_LOGIN_STATE_INVALID: return "INVALID";
	}
	return "?";
}

/* Print one step's result; count it as a failure if it is not the expected one. */
static void expect(const char *step, const char *got, const char *want)
{
	int ok = strcmp(got, want) == 0;

	printf("%-40s %s", step, got);
	if (!ok) {
		printf(" (expected %s)", want);
		failures++;
	}
	printf("\n");
}

static const char *state_of(struct ibv_context *ctx)
{
	enum mlx5dv_crypto_login_state state;
	int rc = mlx5dv_crypto_login_query_state(ctx, &state);

	return rc ? errname(rc) : statename(state);
}

/* Read a hex file of exactly len bytes. */
static int read_hex(const char *path, unsigned char *out, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t i;
	int ok = f != NULL;

	for (i = 0; ok && i < len; i++)
		ok = fscanf(f, "%2hhx", &out[i]) == 1;
	if (f)
		fclose(f);
	if (!ok)
		fprintf(stderr, "%s: expected %zu bytes in hex\n", path, len);
	return ok ? 0 : -1;
}

static struct mlx5dv_dek *make_dek(struct ibv_context *ctx, struct ibv_pd *pd,
				   const unsigned char *key, struct mlx5dv_crypto_login_obj *login)
{
	struct mlx5dv_dek_init_attr attr = {
		.key_size = MLX5DV_CRYPTO_KEY_SIZE_128,
		.key_purpose = MLX5DV_CRYPTO_KEY_PURPOSE_AES_XTS,
		.pd = pd,
		.opaque = "disk0",
	};

	memcpy(attr.key, key, 40);
	if (login) {
		attr.comp_mask = MLX5DV_DEK_INIT_ATTR_CRYPTO_LOGIN;
		attr.crypto_login = login;
	}
	return mlx5dv_dek_create(ctx, &attr);
}

/* One SEND of len bytes at addr under key, to the QP itself (connected to its own number). */
static int loop_send(struct ibv_qp *qp, struct ibv_cq *cq, uint32_t key, uint64_t addr,
		     uint32_t len, struct ibv_mr *mr, char *into)
{
	struct ibv_sge rsge = { (uintptr_t)into, len, mr->lkey }, sge = { addr, len, key };
	struct ibv_recv_wr rwr = { .sg_list = &rsge, .num_sge = 1 }, *rbad;
	struct ibv_send_wr wr = { .sg_list = &sge, .num_sge = 1, .opcode = IBV_WR_SEND,
				  .send_flags = IBV_SEND_SIGNALED }, *bad;
	struct ibv_wc wc[2];
	int n = 0;

	if (ibv_post_recv(qp, &rwr, &rbad) || ibv_post_send(qp, &wr, &bad))
		return -1;
	while (n < 2)
		n += ibv_poll_cq(cq, 2 - n, wc + n);
	return wc[0].status ? (int)wc[0].status : (int)wc[1].status;
}

/* Configure an MKey over len bytes at addr: AES-XTS with dek, 512-byte data units, tweak 0. */
static int configure(struct ibv_qp *qp, struct ibv_cq *cq, struct mlx5dv_mkey *mkey,
		     struct ibv_mr *mr, char *addr, uint32_t len, struct mlx5dv_dek *dek,
		     int encrypt_on_tx)
{
	struct ibv_qp_ex *qpx = ibv_qp_to_qp_ex(qp);
	struct mlx5dv_qp_ex *dv = mlx5dv_qp_ex_from_ibv_qp_ex(qpx);
	struct ibv_sge sge = { (uintptr_t)addr, len, mr->lkey };
	struct mlx5dv_crypto_attr crypto = {
		.crypto_standard = MLX5DV_CRYPTO_STANDARD_AES_XTS,
		.encrypt_on_tx = encrypt_on_tx,
		.data_unit_size = MLX5DV_BLOCK_SIZE_512,
		.dek = dek,
	};
	struct ibv_wc wc;

	ibv_wr_start(qpx);
	qpx->wr_flags = IBV_SEND_SIGNALED;
	mlx5dv_wr_mkey_configure(dv, mkey, 3, &(struct mlx5dv_mkey_conf_attr){ 0 });
	mlx5dv_wr_set_mkey_access_flags(dv, IBV_ACCESS_LOCAL_WRITE);
	mlx5dv_wr_set_mkey_layout_list(dv, 1, &sge);
	mlx5dv_wr_set_mkey_crypto(dv, &crypto);
	if (ibv_wr_complete(qpx))
		return -1;
	while (ibv_poll_cq(cq, 1, &wc) == 0)
		;
	return wc.status;
}

/*
 * Use the DEK with no session: two crypto MKeys over a buffer, one encrypting on TX and one
 * decrypting, and a QP that sends to itself. 'c' x 512 goes out through the first and lands
 * (ciphertext) under the second, which sends it out again as plaintext.
 */
static void use_outside_session(struct ibv_context *ctx, struct ibv_pd *pd,
				struct mlx5dv_dek *dek)
{
	static char buf[3 * 512];
	struct ibv_qp_init_attr_ex init = {
		.qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = 4, .max_recv_wr = 4, .max_send_sge = 1, .max_recv_sge = 1 },
		.comp_mask = IBV_QP_INIT_ATTR_PD | IBV_QP_INIT_ATTR_SEND_OPS_FLAGS,
		.send_ops_flags = IBV_QP_EX_WITH_SEND,
		.pd = pd,
	};
	struct mlx5dv_qp_init_attr dv_init = {
		.comp_mask = MLX5DV_QP_INIT_ATTR_MASK_SEND_OPS_FLAGS,
		.send_ops_flags = MLX5DV_QP_EX_WITH_MKEY_CONFIGURE,
	};
	struct mlx5dv_mkey_init_attr mk = {
		.pd = pd,
		.create_flags = MLX5DV_MKEY_INIT_ATTR_FLAGS_INDIRECT |
				MLX5DV_MKEY_INIT_ATTR_FLAGS_CRYPTO,
		.max_entries = 1,
	};
	struct ibv_qp_attr attr = { .qp_state = IBV_QPS_INIT, .port_num = 1 };
	struct mlx5dv_mkey *enc, *dec;
	struct ibv_cq *cq = ibv_create_cq(ctx, 8, NULL, NULL, 0);
	struct ibv_mr *mr = ibv_reg_mr(pd, buf, sizeof(buf), IBV_ACCESS_LOCAL_WRITE);
	struct ibv_qp *qp;
	int ok, rc;

	init.send_cq = init.recv_cq = cq;
	qp = cq && mr ? mlx5dv_create_qp(ctx, &init, &dv_init) : NULL;
	enc = mlx5dv_create_mkey(&mk);
	dec = mlx5dv_create_mkey(&mk);
	if (!qp || !enc || !dec) {
		expect("MKeys and a QP", errname(errno), "0");
		return;
	}
	ibv_modify_qp(qp, &attr, IBV_QP_STATE | IBV_QP_PORT);
	attr = (struct ibv_qp_attr){ .qp_state = IBV_QPS_RTR, .dest_qp_num = qp->qp_num };
	ibv_modify_qp(qp, &attr, IBV_QP_STATE | IBV_QP_DEST_QPN);
	attr = (struct ibv_qp_attr){ .qp_state = IBV_QPS_RTS };
	ibv_modify_qp(qp, &attr, IBV_QP_STATE);

	rc = configure(qp, cq, enc, mr, buf, 512, dek, 1);
	if (!rc)
		rc = configure(qp, cq, dec, mr, buf + 512, 512, dek, 0);
	expect("mkey configure outside session", errname(rc), "0");
	memset(buf, 'c', 512);
	expect("encrypt outside session",
	       errname(loop_send(qp, cq, enc->lkey, 0, 512, mr, buf + 512)), "0");
	expect("decrypt outside session",
	       errname(loop_send(qp, cq, dec->lkey, 0, 512, mr, buf + 1024)), "0");
	ok = memcmp(buf + 512, buf, 512) != 0 && memcmp(buf + 1024, buf, 512) == 0;
	expect("round trip outside session", ok ? "same" : "different", "same");

	mlx5dv_destroy_mkey(enc);
	mlx5dv_destroy_mkey(dec);
	ibv_destroy_qp(qp);
	ibv_dereg_mr(mr);
	ibv_destroy_cq(cq);
}

int main(int argc, char **argv)
{
	struct mlx5dv_crypto_login_attr login = { 0 };
	struct mlx5dv_context dv = { .comp_mask = MLX5DV_CONTEXT_MASK_CRYPTO_OFFLOAD };
	struct mlx5dv_crypto_login_query_attr query = { 0 };
	struct mlx5dv_crypto_login_attr_ex login_ex;
	struct mlx5dv_crypto_login_obj *obj;
	struct mlx5dv_dek_attr dek_attr = { 0 };
	unsigned char cred[48], key[40];
	struct ibv_device **list;
	struct ibv_context *ctx;
	struct mlx5dv_dek *dek;
	struct ibv_pd *pd;
	int num, rc;

	if (argc != 5) {
		fprintf(stderr, "usage: %s CRED_ID KEK_ID CRED_FILE DEK_FILE\n", argv[0]);
		return 64;
	}
	if (read_hex(argv[3], cred, sizeof(cred)) || read_hex(argv[4], key, sizeof(key)))
		return 64;

	list = ibv_get_device_list(&num);
	if (!list || num < 1) {
		fprintf(stderr, "no verbs device: %s\n", list ? "empty list" : strerror(errno));
		return 1;
	}
	printf("%-40s %d (%s)\n", "devices", num, ibv_get_device_name(list[0]));
	ctx = ibv_open_device(list[0]);
	ibv_free_device_list(list);
	if (!ctx) {
		fprintf(stderr, "ibv_open_device: %s\n", strerror(errno));
		return 1;
	}
	if (mlx5dv_query_device(ctx, &dv) || !(dv.comp_mask & MLX5DV_CONTEXT_MASK_CRYPTO_OFFLOAD)) {
		fprintf(stderr, "no crypto caps\n");
		return 1;
	}
	expect("caps: wrapped crypto operational",
	       dv.crypto_caps.flags & MLX5DV_CRYPTO_CAPS_WRAPPED_CRYPTO_OPERATIONAL ? "yes" : "no",
	       "yes");
	pd = ibv_alloc_pd(ctx);

	/* Before any login: no session, no DEK (wrapped mode), nothing to log out. */
	dek = make_dek(ctx, pd, key, NULL);
	expect("dek_create without login", dek ? "0" : errname(errno), "EINVAL");
	expect("query_state", state_of(ctx), "NO_LOGIN");
	expect("logout without login", errname(mlx5dv_crypto_logout(ctx)), "ENOENT");

	/* Bad attributes: EINVAL. */
	login.credential_id = (uint32_t)strtoul(argv[1], NULL, 0);
	login.import_kek_id = (uint32_t)strtoul(argv[2], NULL, 0);
	memcpy(login.credential, cred, sizeof(cred));
	login.comp_mask = 1;
	expect("login comp_mask=1", errname(mlx5dv_crypto_login(ctx, &login)), "EINVAL");
	login.comp_mask = 0;
	login.credential_id |= 1u << 24;
	expect("login credential_id >= 2^24", errname(mlx5dv_crypto_login(ctx, &login)), "EINVAL");
	login.credential_id &= ~(1u << 24);

	/* The login; a refused credential ends the program with its errno. */
	rc = mlx5dv_crypto_login(ctx, &login);
	printf("%-40s %s\n", "login", errname(rc));
	if (rc) {
		ibv_close_device(ctx);
		return 2;
	}
	expect("query_state", state_of(ctx), "VALID");
	expect("login again", errname(mlx5dv_crypto_login(ctx, &login)), "EEXIST");

	/* A DEK made inside the session. */
	dek = make_dek(ctx, pd, key, NULL);
	expect("dek_create in session", dek ? "0" : errname(errno), "0");
	if (!dek)
		return 1;
	rc = mlx5dv_dek_query(dek, &dek_attr);
	expect("dek_query", errname(rc), "0");
	expect("dek opaque", memcmp(dek_attr.opaque, "disk0", 6) ? "different" : "disk0", "disk0");
	dek_attr.comp_mask = 1;
	expect("dek_query comp_mask=1", errname(mlx5dv_dek_query(dek, &dek_attr)), "EINVAL");
	dek_attr.comp_mask = 0;

	/* Logout: the session ends, the DEK stays loaded. */
	expect("logout", errname(mlx5dv_crypto_logout(ctx)), "0");
	expect("query_state", state_of(ctx), "NO_LOGIN");
	expect("logout again", errname(mlx5dv_crypto_logout(ctx)), "ENOENT");
	/* Outside the session the DEK is still the context's and still encrypts: MKeys use it
	 * without a login (mlx5dv_crypto_login(3)). Querying a wrapped DEK needs a valid login
	 * (mlx5dv_dek_create(3)); destroying it does not. */
	use_outside_session(ctx, pd, dek);
	expect("dek_query outside session", errname(mlx5dv_dek_query(dek, &dek_attr)), "EINVAL");
	expect("dek_destroy outside session", errname(mlx5dv_dek_destroy(dek)), "0");

	/* The login-object API (mlx5dv_crypto_login_create(3)). */
	login_ex = (struct mlx5dv_crypto_login_attr_ex){
		.credential_id = login.credential_id,
		.import_kek_id = login.import_kek_id,
		.credential = cred,
		.credential_len = sizeof(cred),
		.comp_mask = 1,
	};
	obj = mlx5dv_crypto_login_create(ctx, &login_ex);
	expect("login_create comp_mask=1", obj ? "0" : errname(errno), "EINVAL");
	login_ex.comp_mask = 0;
	obj = mlx5dv_crypto_login_create(ctx, &login_ex);
	expect("login_create", obj ? "0" : errname(errno), "0");
	if (!obj)
		return 1;
	rc = mlx5dv_crypto_login_query(obj, &query);
	expect("login_query", rc ? errname(rc) : statename(query.state), "VALID");
	query.comp_mask = 1;
	expect("login_query comp_mask=1", errname(mlx5dv_crypto_login_query(obj, &query)),
	       "EINVAL");
	dek = make_dek(ctx, pd, key, obj);
	expect("dek_create with login object", dek ? "0" : errname(errno), "0");
	if (dek)
		expect("dek_destroy", errname(mlx5dv_dek_destroy(dek)), "0");
	expect("login_destroy", errname(mlx5dv_crypto_login_destroy(obj)), "0");

	ibv_dealloc_pd(pd);
	ibv_close_device(ctx);
	printf("%s\n", failures ? "FAILED" : "ok");
	return failures ? 1 : 0;
}
