/*
 * mlx5_crypto_login: the crypto login sequence of mlx5dv_crypto_login(3) with every errno
 * of its man page, and a DEK created inside a session and used outside it.
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
	/* Outside the session the DEK is still the context's: querying a wrapped DEK needs a
	 * valid login (mlx5dv_dek_create(3)), destroying it does not. */
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
