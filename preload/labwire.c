/*
 * The control-protocol client of the verbs preload: framing, request building, a JSON
 * scanner for replies, base64. See labwire.h.
 */
#include "labwire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* The daemon's own limit on one message (hcasim.lab.protocol.MAX_MESSAGE). */
#define LW_MAX_MESSAGE (24u * 1024u * 1024u)

static int buf_reserve(struct lw_buf *buf, size_t extra)
{
	size_t need = buf->len + extra + 1;
	char *grown;

	if (need <= buf->cap)
		return 0;
	if (need < 256)
		need = 256;
	if (need < buf->cap * 2)
		need = buf->cap * 2;
	grown = realloc(buf->data, need);
	if (!grown)
		return ENOMEM;
	buf->data = grown;
	buf->cap = need;
	return 0;
}

static int buf_add(struct lw_buf *buf, const char *text, size_t len)
{
	if (buf_reserve(buf, len))
		return ENOMEM;
	memcpy(buf->data + buf->len, text, len);
	buf->len += len;
	buf->data[buf->len] = '\0';
	return 0;
}

static int buf_puts(struct lw_buf *buf, const char *text)
{
	return buf_add(buf, text, strlen(text));
}

void lw_buf_free(struct lw_buf *buf)
{
	if (buf->data) {
		/* requests may have held a wrapped secret */
		memset(buf->data, 0, buf->cap);
		free(buf->data);
	}
	buf->data = NULL;
	buf->len = buf->cap = 0;
}

/* A JSON string literal of a plain name (escapes quote, backslash, control bytes). */
static int buf_string(struct lw_buf *buf, const char *text)
{
	char esc[8];

	if (buf_puts(buf, "\""))
		return ENOMEM;
	for (; *text; text++) {
		unsigned char c = (unsigned char)*text;

		if (c == '"' || c == '\\' || c < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			if (buf_puts(buf, esc))
				return ENOMEM;
		} else if (buf_add(buf, (const char *)&c, 1)) {
			return ENOMEM;
		}
	}
	return buf_puts(buf, "\"");
}

static int req_key(struct lw_buf *req, const char *key)
{
	/* the first member of a nested object takes no comma */
	if (req->data[req->len - 1] != '{' && buf_puts(req, ","))
		return ENOMEM;
	if (buf_string(req, key))
		return ENOMEM;
	return buf_puts(req, ":");
}

int lw_req_start(struct lw_buf *req, const char *op)
{
	req->len = 0;
	if (buf_reserve(req, 4 + 64))
		return ENOMEM;
	/* four bytes for the length header, filled in by lw_call */
	memset(req->data, 0, 4);
	req->len = 4;
	if (buf_puts(req, "{\"op\":"))
		return ENOMEM;
	return buf_string(req, op);
}

int lw_req_int(struct lw_buf *req, const char *key, uint64_t value)
{
	char num[32];

	snprintf(num, sizeof(num), "%llu", (unsigned long long)value);
	if (req_key(req, key))
		return ENOMEM;
	return buf_puts(req, num);
}

int lw_req_str(struct lw_buf *req, const char *key, const char *value)
{
	if (req_key(req, key))
		return ENOMEM;
	return buf_string(req, value);
}

int lw_req_uint32s(struct lw_buf *req, const char *key, const uint32_t *values, size_t n)
{
	char num[16];
	size_t i;

	if (req_key(req, key) || buf_puts(req, "["))
		return ENOMEM;
	for (i = 0; i < n; i++) {
		snprintf(num, sizeof(num), i ? ",%u" : "%u", values[i]);
		if (buf_puts(req, num))
			return ENOMEM;
	}
	return buf_puts(req, "]");
}

int lw_req_bool(struct lw_buf *req, const char *key, bool value)
{
	if (req_key(req, key))
		return ENOMEM;
	return buf_puts(req, value ? "true" : "false");
}

int lw_req_begin(struct lw_buf *req, const char *key)
{
	if (req_key(req, key))
		return ENOMEM;
	return buf_puts(req, "{");
}

int lw_req_end(struct lw_buf *req)
{
	return buf_puts(req, "}");
}

int lw_req_null(struct lw_buf *req, const char *key)
{
	if (req_key(req, key))
		return ENOMEM;
	return buf_puts(req, "null");
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int lw_req_b64(struct lw_buf *req, const char *key, const void *data, size_t len)
{
	const unsigned char *in = data;
	size_t i;
	char *out;

	if (req_key(req, key) || buf_reserve(req, (len + 2) / 3 * 4 + 2))
		return ENOMEM;
	out = req->data + req->len;
	*out++ = '"';
	for (i = 0; i + 2 < len; i += 3) {
		*out++ = B64[in[i] >> 2];
		*out++ = B64[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
		*out++ = B64[((in[i + 1] & 15) << 2) | (in[i + 2] >> 6)];
		*out++ = B64[in[i + 2] & 63];
	}
	if (i < len) {
		*out++ = B64[in[i] >> 2];
		if (i + 1 < len) {
			*out++ = B64[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
			*out++ = B64[(in[i + 1] & 15) << 2];
		} else {
			*out++ = B64[(in[i] & 3) << 4];
			*out++ = '=';
		}
		*out++ = '=';
	}
	*out++ = '"';
	*out = '\0';
	req->len = (size_t)(out - req->data);
	return 0;
}

int lw_connect(const char *host)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	const char *path = getenv("HCASIM_SOCKET");
	struct lw_buf req = { 0 }, reply = { 0 };
	int fd, err;

	if (!path || !*path || !host || !*host) {
		errno = ENODEV;
		return -1;
	}
	if (strlen(path) >= sizeof(addr.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(addr.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	err = lw_req_start(&req, "hello") || lw_req_str(&req, "host", host) ? ENOMEM : 0;
	if (!err)
		err = lw_call(fd, &req, &reply);
	lw_buf_free(&req);
	lw_buf_free(&reply);
	if (err) {
		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

void lw_close(int fd)
{
	if (fd >= 0)
		close(fd);
}

static int write_all(int fd, const char *data, size_t len)
{
	while (len) {
		ssize_t n = send(fd, data, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

static int read_all(int fd, char *data, size_t len)
{
	while (len) {
		ssize_t n = read(fd, data, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

int lw_call(int fd, struct lw_buf *req, struct lw_buf *reply)
{
	unsigned char header[4];
	size_t body, len;
	const char *fault;
	int64_t code;

	if (buf_puts(req, "}"))
		return ENOMEM;
	body = req->len - 4;
	req->data[0] = (char)(body >> 24);
	req->data[1] = (char)(body >> 16);
	req->data[2] = (char)(body >> 8);
	req->data[3] = (char)body;
	/* a lost daemon is a dead device file: every call fails with EIO */
	if (fd < 0 || write_all(fd, req->data, req->len))
		return EIO;
	if (read_all(fd, (char *)header, 4))
		return EIO;
	len = ((size_t)header[0] << 24) | ((size_t)header[1] << 16) |
	      ((size_t)header[2] << 8) | header[3];
	if (len > LW_MAX_MESSAGE)
		return EIO;
	reply->len = 0;
	if (buf_reserve(reply, len))
		return ENOMEM;
	if (read_all(fd, reply->data, len))
		return EIO;
	reply->len = len;
	reply->data[len] = '\0';

	fault = lw_get(reply->data, "ok");
	if (!fault)
		return EIO;
	if (strncmp(fault, "true", 4) != 0)
		return lw_get_int(reply->data, "errno", &code) == 0 && code > 0 ? (int)code : EIO;
	fault = lw_get(reply->data, "crypto_error");
	if (fault && *fault == '{')
		return lw_get_int(fault, "errno", &code) == 0 && code > 0 ? (int)code : EIO;
	return 0;
}

/* --- the JSON scanner ------------------------------------------------------------------ */

static const char *ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

static const char *skip_string(const char *p)
{
	for (p++; *p; p++) {
		if (*p == '\\') {
			if (!p[1])
				return NULL;
			p++;
		} else if (*p == '"') {
			return p + 1;
		}
	}
	return NULL;
}

const char *lw_skip(const char *p)
{
	char open, close;
	int depth;

	p = ws(p);
	switch (*p) {
	case '"':
		return skip_string(p);
	case '{':
	case '[':
		open = *p;
		close = open == '{' ? '}' : ']';
		depth = 0;
		while (*p) {
			if (*p == '"') {
				p = skip_string(p);
				if (!p)
					return NULL;
				continue;
			}
			if (*p == open)
				depth++;
			else if (*p == close && --depth == 0)
				return p + 1;
			p++;
		}
		return NULL;
	default:
		if (!*p)
			return NULL;
		while (*p && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n')
			p++;
		return p;
	}
}

const char *lw_get(const char *obj, const char *key)
{
	size_t klen = strlen(key);
	const char *p = ws(obj);

	if (*p != '{')
		return NULL;
	p = ws(p + 1);
	while (*p == '"') {
		const char *kend = skip_string(p);
		int match;

		if (!kend)
			return NULL;
		match = (size_t)(kend - p - 2) == klen && memcmp(p + 1, key, klen) == 0;
		p = ws(kend);
		if (*p != ':')
			return NULL;
		p = ws(p + 1);
		if (match)
			return p;
		p = lw_skip(p);
		if (!p)
			return NULL;
		p = ws(p);
		if (*p != ',')
			return NULL;
		p = ws(p + 1);
	}
	return NULL;
}

int lw_get_int(const char *obj, const char *key, int64_t *out)
{
	const char *v = lw_get(obj, key);
	char *end;
	long long value;

	if (!v || (*v != '-' && (*v < '0' || *v > '9')))
		return -1;
	errno = 0;
	value = strtoll(v, &end, 10);
	if (errno || end == v)
		return -1;
	*out = value;
	return 0;
}

static int b64_value(char c)
{
	const char *at = c ? strchr(B64, c) : NULL;

	return at ? (int)(at - B64) : -1;
}

long lw_get_b64(const char *obj, const char *key, void *out, size_t cap)
{
	const char *v = lw_get(obj, key);
	unsigned char *dst = out;
	unsigned int acc = 0;
	size_t n = 0;
	int bits = 0;

	if (!v || *v != '"')
		return -1;
	for (v++; *v && *v != '"'; v++) {
		int d;

		if (*v == '=')
			continue;
		d = b64_value(*v);
		if (d < 0)
			return -1;
		acc = (acc << 6) | (unsigned int)d;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n >= cap)
				return -1;
			dst[n++] = (unsigned char)(acc >> bits);
		}
	}
	return *v == '"' ? (long)n : -1;
}
