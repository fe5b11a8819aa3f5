/*
 * The lab daemon's control protocol, as the verbs preload speaks it (docs/crypto.md §9):
 * a 4-byte big-endian length, then a JSON object. Requests are built with lw_req_*;
 * replies are read with the small JSON scanner (lw_get_*), which only walks the text.
 *
 * Nothing here logs or prints: requests carry wrapped credentials and keys.
 */
#ifndef HCASIM_LABWIRE_H
#define HCASIM_LABWIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A request or reply buffer that grows as needed. */
struct lw_buf {
	char *data;
	size_t len;
	size_t cap;
};

/* One connection to the daemon, bound to a host by "hello"; -1 and errno on failure. */
int lw_connect(const char *host);
void lw_close(int fd);

/* Request building: start with the op, add fields, then lw_call. */
int lw_req_start(struct lw_buf *req, const char *op);
int lw_req_int(struct lw_buf *req, const char *key, uint64_t value);
int lw_req_str(struct lw_buf *req, const char *key, const char *value);
int lw_req_b64(struct lw_buf *req, const char *key, const void *data, size_t len);
/* A list of dwords, [v0, v1, ...] (the PCI preload's cr_write). */
int lw_req_uint32s(struct lw_buf *req, const char *key, const uint32_t *values, size_t n);
int lw_req_bool(struct lw_buf *req, const char *key, bool value);
/* A nested object member: lw_req_begin, its fields, lw_req_end. */
int lw_req_begin(struct lw_buf *req, const char *key);
int lw_req_end(struct lw_buf *req);
int lw_req_null(struct lw_buf *req, const char *key);
void lw_buf_free(struct lw_buf *buf);

/*
 * Send the request and read the reply into *reply (NUL-terminated). Returns 0 when the
 * daemon answered ok and no crypto error came back; otherwise the errno the caller
 * reports: the refusal's errno, the engine's errno, or EIO when the daemon is gone.
 */
int lw_call(int fd, struct lw_buf *req, struct lw_buf *reply);

/* JSON scanning over a reply: value of a member of the object at obj, or NULL. */
const char *lw_get(const char *obj, const char *key);
int lw_get_int(const char *obj, const char *key, int64_t *out);
/* Decode a base64 string member into out (at most cap bytes); its length, or -1. */
long lw_get_b64(const char *obj, const char *key, void *out, size_t cap);
/* The value after the one at p (p at a value); NULL if malformed. */
const char *lw_skip(const char *p);

#endif
