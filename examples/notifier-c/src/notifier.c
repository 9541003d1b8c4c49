/*
 * notifier-c: a svidagent notifier plugin in C, written from
 * hostapi/ABI.md alone (no SDK, no generated code).
 *
 * On every rotation it logs one line per X.509 identity through the host's
 * `log` import:
 *
 *     <prefix>rotated spiffe://example.org/web serial 0a1b (svid "web", x509)
 *
 * and adds 1 to its counter "rotations_total" through the Metrics host
 * service (the `call`/`take` imports), when the host offers it.
 *
 * Build (Debian: apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32):
 *
 *     clang --target=wasm32-wasi -O2 -mexec-model=reactor -o notifier.wasm notifier.c
 *
 * Everything below follows the section of ABI.md named in its comment.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- §2 module requirements: the marker and the exports ---------------- */

#define EXPORT(name) __attribute__((export_name(name)))
#define IMPORT(name) \
	__attribute__((import_module("svidagent_host_v1"), import_name(name)))

/* The ABI marker: never called; its presence says "I speak ABI v1". */
EXPORT("svidagent_abi_v1") void svidagent_abi_v1(void) {}

/* §3: the host allocates request envelopes here; 0 means out of memory. */
EXPORT("svidagent_alloc") void *svidagent_alloc(uint32_t size)
{
	return malloc(size ? size : 1);
}

/* §3: the host frees response envelopes here, once it has copied them. */
EXPORT("svidagent_free") void svidagent_free(void *ptr, uint32_t size)
{
	(void)size;
	free(ptr);
}

/* ---- §5 host imports ---------------------------------------------------- */

IMPORT("log") void host_log(int32_t level, const char *ptr, uint32_t len);
IMPORT("call") int32_t host_call(const uint8_t *ptr, uint32_t len);
IMPORT("take") int32_t host_take(uint8_t *ptr, uint32_t len);

enum { LEVEL_DEBUG = -4, LEVEL_INFO = 0, LEVEL_WARN = 4, LEVEL_ERROR = 8 };

/* §4 status codes. */
enum {
	OK = 0,
	UNKNOWN = 2,
	INVALID_ARGUMENT = 3,
	RESOURCE_EXHAUSTED = 8,
	FAILED_PRECONDITION = 9,
	UNIMPLEMENTED = 12,
	INTERNAL = 13,
	PERMISSION_DENIED = 7,
};

/* ---- a growable byte buffer --------------------------------------------- */

typedef struct {
	uint8_t *p;
	uint32_t len, cap;
	int oom; /* set when a growth failed; every later put is a no-op */
} buf;

static void put(buf *b, const void *data, uint32_t n)
{
	if (b->oom || n == 0)
		return;
	if (b->len + n > b->cap) {
		uint32_t cap = b->cap ? b->cap * 2 : 64;
		while (cap < b->len + n)
			cap *= 2;
		uint8_t *p = realloc(b->p, cap);
		if (!p) {
			b->oom = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
}

static void puts_(buf *b, const char *s) { put(b, s, (uint32_t)strlen(s)); }

static void put_u32le(buf *b, uint32_t v)
{
	uint8_t le[4] = {v, v >> 8, v >> 16, v >> 24};
	put(b, le, 4);
}

/* ---- protobuf (proto3) wire format, by hand ------------------------------ */

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

static void pb_varint(buf *b, uint64_t v)
{
	uint8_t t[10];
	int n = 0;
	do {
		t[n] = v & 0x7f;
		v >>= 7;
		if (v)
			t[n] |= 0x80;
		n++;
	} while (v);
	put(b, t, n);
}

static void pb_key(buf *b, uint32_t field, uint32_t wt) { pb_varint(b, (uint64_t)field << 3 | wt); }

static void pb_bytes(buf *b, uint32_t field, const void *p, uint32_t n)
{
	pb_key(b, field, WT_LEN);
	pb_varint(b, n);
	put(b, p, n);
}

static void pb_string(buf *b, uint32_t field, const char *s) { pb_bytes(b, field, s, (uint32_t)strlen(s)); }

/* A reader over one message. */
typedef struct {
	const uint8_t *p, *end;
} rd;

/* One decoded field. For WT_LEN, data/n is the value; otherwise v. */
typedef struct {
	uint32_t field, wt;
	uint64_t v;
	const uint8_t *data;
	uint32_t n;
} pbfield;

static int rd_varint(rd *r, uint64_t *v)
{
	uint64_t x = 0;
	for (int shift = 0; shift < 64; shift += 7) {
		if (r->p >= r->end)
			return -1;
		uint8_t c = *r->p++;
		x |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80)) {
			*v = x;
			return 0;
		}
	}
	return -1; /* more than 10 bytes */
}

/*
 * rd_next decodes the next field: 1 when it did, 0 at the end of the
 * message, -1 when the bytes are not protobuf. Fields the caller does not
 * know are skipped by the caller simply not looking at them: messages only
 * grow (ABI.md §1), so unknown fields must be tolerated.
 */
static int rd_next(rd *r, pbfield *f)
{
	uint64_t key, n;
	if (r->p == r->end)
		return 0;
	if (rd_varint(r, &key) < 0 || key >> 3 == 0 || key >> 3 > 0x1fffffff)
		return -1;
	f->field = (uint32_t)(key >> 3);
	f->wt = key & 7;
	f->v = 0;
	f->data = 0;
	f->n = 0;
	switch (f->wt) {
	case WT_VARINT:
		return rd_varint(r, &f->v) < 0 ? -1 : 1;
	case WT_I64:
		if (r->end - r->p < 8)
			return -1;
		memcpy(&f->v, r->p, 8);
		r->p += 8;
		return 1;
	case WT_I32:
		if (r->end - r->p < 4)
			return -1;
		memcpy(&f->v, r->p, 4);
		r->p += 4;
		return 1;
	case WT_LEN:
		if (rd_varint(r, &n) < 0 || n > (uint64_t)(r->end - r->p))
			return -1;
		f->data = r->p;
		f->n = (uint32_t)n;
		r->p += n;
		return 1;
	default: /* groups (3, 4) are not proto3; 6 and 7 do not exist */
		return -1;
	}
}

/* ---- responses (§4) ------------------------------------------------------ */

/* The i64 svidagent_call returns: (ptr << 32) | len; 0 is a guest error. */
static uint64_t respond(uint32_t status, const char *msg, const buf *payload)
{
	uint32_t ml = msg ? (uint32_t)strlen(msg) : 0;
	uint32_t pl = payload && status == OK ? payload->len : 0;
	uint32_t n = 8 + ml + pl;
	uint8_t *p = malloc(n);
	if (!p)
		return 0;
	uint8_t hdr[8] = {status, status >> 8, status >> 16, status >> 24, ml, ml >> 8, ml >> 16, ml >> 24};
	memcpy(p, hdr, 8);
	if (ml)
		memcpy(p + 8, msg, ml);
	if (pl)
		memcpy(p + 8 + ml, payload->p, pl);
	return (uint64_t)(uintptr_t)p << 32 | n;
}

/* ---- state: all of it rebuilt from Describe and Configure (§6) ---------- */

#define MAX_PREFIX 128
static char prefix[MAX_PREFIX + 1];
static int configured;
static int metrics_offered;

/* ---- a minimal JSON reader for the config block --------------------------- */

/*
 * The config is one JSON object; notifier-c knows one attribute, "prefix",
 * a string prepended to every line. Anything else is a problem reported
 * against its field.
 */
typedef struct {
	const char *p, *end;
} js;

static void js_ws(js *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static void utf8(buf *out, uint32_t c)
{
	uint8_t t[3];
	if (c < 0x80) {
		t[0] = c;
		put(out, t, 1);
	} else if (c < 0x800) {
		t[0] = 0xc0 | c >> 6, t[1] = 0x80 | (c & 0x3f);
		put(out, t, 2);
	} else {
		t[0] = 0xe0 | c >> 12, t[1] = 0x80 | (c >> 6 & 0x3f), t[2] = 0x80 | (c & 0x3f);
		put(out, t, 3);
	}
}

/* js_string reads a string at j->p into out (if not NULL); -1 if malformed.
 * A \u escape of a surrogate half becomes U+FFFD: no prefix needs one. */
static int js_string(js *j, buf *out)
{
	if (j->p >= j->end || *j->p != '"')
		return -1;
	j->p++;
	while (j->p < j->end) {
		char c = *j->p++;
		if (c == '"')
			return 0;
		if ((unsigned char)c < 0x20)
			return -1;
		if (c != '\\') {
			if (out)
				put(out, &c, 1);
			continue;
		}
		if (j->p >= j->end)
			return -1;
		char e = *j->p++, r;
		switch (e) {
		case '"': case '\\': case '/': r = e; break;
		case 'b': r = '\b'; break;
		case 'f': r = '\f'; break;
		case 'n': r = '\n'; break;
		case 'r': r = '\r'; break;
		case 't': r = '\t'; break;
		case 'u': {
			uint32_t cp = 0;
			if (j->end - j->p < 4)
				return -1;
			for (int i = 0; i < 4; i++) {
				char h = *j->p++;
				cp <<= 4;
				if (h >= '0' && h <= '9') cp |= h - '0';
				else if (h >= 'a' && h <= 'f') cp |= h - 'a' + 10;
				else if (h >= 'A' && h <= 'F') cp |= h - 'A' + 10;
				else return -1;
			}
			if (cp >= 0xd800 && cp <= 0xdfff)
				cp = 0xfffd;
			if (out)
				utf8(out, cp);
			continue;
		}
		default:
			return -1;
		}
		if (out)
			put(out, &r, 1);
	}
	return -1;
}

/* js_skip skips one value of any type; depth bounds nesting. */
static int js_skip(js *j, int depth)
{
	if (depth > 32)
		return -1;
	js_ws(j);
	if (j->p >= j->end)
		return -1;
	char c = *j->p;
	if (c == '"')
		return js_string(j, 0);
	if (c == '{' || c == '[') {
		char close = c == '{' ? '}' : ']';
		j->p++;
		js_ws(j);
		if (j->p < j->end && *j->p == close) {
			j->p++;
			return 0;
		}
		for (;;) {
			if (c == '{') {
				js_ws(j);
				if (js_string(j, 0) < 0)
					return -1;
				js_ws(j);
				if (j->p >= j->end || *j->p++ != ':')
					return -1;
			}
			if (js_skip(j, depth + 1) < 0)
				return -1;
			js_ws(j);
			if (j->p >= j->end)
				return -1;
			if (*j->p == close) {
				j->p++;
				return 0;
			}
			if (*j->p++ != ',')
				return -1;
		}
	}
	/* a number or a literal: its characters, then a delimiter */
	const char *start = j->p;
	while (j->p < j->end && (strchr("+-.eE", *j->p) || (*j->p >= '0' && *j->p <= '9') ||
				 (*j->p >= 'a' && *j->p <= 'z')))
		j->p++;
	if (j->p == start)
		return -1;
	size_t n = j->p - start;
	if ((*start >= 'a' && *start <= 'z') &&
	    !((n == 4 && !memcmp(start, "true", 4)) || (n == 5 && !memcmp(start, "false", 5)) ||
	      (n == 4 && !memcmp(start, "null", 4))))
		return -1;
	return 0;
}

/* Problems found in a config: FieldError messages (plugin.proto). */
typedef struct {
	buf enc; /* encoded ValidateResponse: repeated FieldError problems = 1 */
	int count;
	char first[256]; /* the first problem, "field: message", for Configure */
} problems;

static void problem(problems *ps, const char *field, uint32_t flen, const char *msg)
{
	buf fe = {0};
	pb_bytes(&fe, 1, field, flen);
	pb_string(&fe, 2, msg);
	pb_bytes(&ps->enc, 1, fe.p, fe.len);
	free(fe.p);
	if (ps->count++ == 0) {
		buf s = {0};
		if (flen) {
			put(&s, field, flen);
			puts_(&s, ": ");
		}
		puts_(&s, msg);
		uint32_t n = s.len < sizeof ps->first - 1 ? s.len : sizeof ps->first - 1;
		if (n)
			memcpy(ps->first, s.p, n);
		ps->first[n] = 0;
		free(s.p);
	}
}

/*
 * parse_config checks the config JSON, reporting problems in ps, and when
 * there are none stores the prefix in out (MAX_PREFIX+1 bytes). Empty
 * config_json means no config block: "{}".
 */
static void parse_config(const uint8_t *data, uint32_t n, problems *ps, char *out)
{
	js j = {(const char *)data, (const char *)data + n};
	buf pre = {0};
	out[0] = 0;
	if (n == 0)
		return;
	js_ws(&j);
	if (j.p >= j.end || *j.p != '{') {
		problem(ps, "", 0, "the config must be a JSON object");
		return;
	}
	j.p++;
	js_ws(&j);
	if (j.p < j.end && *j.p == '}') {
		j.p++;
		goto end;
	}
	for (;;) {
		buf key = {0};
		js_ws(&j);
		if (js_string(&j, &key) < 0 || key.oom)
			goto bad;
		js_ws(&j);
		if (j.p >= j.end || *j.p++ != ':') {
			free(key.p);
			goto bad;
		}
		js_ws(&j);
		if (key.len == 6 && !memcmp(key.p, "prefix", 6)) {
			if (j.p < j.end && *j.p == '"') {
				pre.len = 0;
				if (js_string(&j, &pre) < 0 || pre.oom) {
					free(key.p);
					goto bad;
				}
				if (pre.len > MAX_PREFIX)
					problem(ps, "prefix", 6, "at most 128 bytes");
			} else {
				if (js_skip(&j, 0) < 0) {
					free(key.p);
					goto bad;
				}
				problem(ps, "prefix", 6, "must be a string");
			}
		} else {
			if (js_skip(&j, 0) < 0) {
				free(key.p);
				goto bad;
			}
			problem(ps, (const char *)key.p, key.len, "unknown attribute; notifier-c takes prefix");
		}
		free(key.p);
		js_ws(&j);
		if (j.p >= j.end)
			goto bad;
		if (*j.p == '}') {
			j.p++;
			break;
		}
		if (*j.p++ != ',')
			goto bad;
	}
end:
	js_ws(&j);
	if (j.p != j.end)
		goto bad;
	if (ps->count == 0 && pre.len) {
		memcpy(out, pre.p, pre.len);
		out[pre.len] = 0;
	}
	free(pre.p);
	return;
bad:
	free(pre.p);
	problem(ps, "", 0, "the config is not valid JSON");
}

/* ---- host services through call/take (§5) ------------------------------ */

/*
 * host_service calls a host service method with a protobuf payload and
 * returns the response envelope's status (the response payload is not
 * needed here), or -1 when the host refused the envelope.
 */
static int64_t host_service(const char *method, const buf *payload)
{
	buf env = {0};
	uint32_t ml = (uint32_t)strlen(method);
	put_u32le(&env, ml);
	put(&env, method, ml);
	put(&env, payload->p, payload->len);
	if (env.oom) {
		free(env.p);
		return -1;
	}
	int32_t n = host_call(env.p, env.len);
	free(env.p);
	if (n < 8)
		return -1;
	uint8_t *resp = malloc(n);
	if (!resp)
		return -1;
	int32_t got = host_take(resp, n);
	int64_t status = -1;
	if (got == n)
		status = resp[0] | resp[1] << 8 | resp[2] << 16 | (uint32_t)resp[3] << 24;
	free(resp);
	return status;
}

static void logs(int level, const buf *line) { host_log(level, (const char *)line->p, line->len); }

/* ---- the methods ---------------------------------------------------------- */

static const char M_DESCRIBE[] = "svidagent.plugin.v1.Plugin/Describe";
static const char M_VALIDATE[] = "svidagent.plugin.v1.Plugin/Validate";
static const char M_CONFIGURE[] = "svidagent.plugin.v1.Plugin/Configure";
static const char M_CLOSE[] = "svidagent.plugin.v1.Plugin/Close";
static const char M_NOTIFY[] = "svidagent.plugin.notifier.v1.Notifier/Notify";
static const char S_METRICS[] = "svidagent.host.v1.Metrics";

static int is(const uint8_t *m, uint32_t n, const char *want)
{
	return n == strlen(want) && !memcmp(m, want, n);
}

/* Describe: DescribeRequest{host_services = 1}; answer DescribeResponse. */
static uint64_t describe(const uint8_t *p, uint32_t n)
{
	rd r = {p, p + n};
	pbfield f;
	int k, metrics = 0;
	while ((k = rd_next(&r, &f)) > 0)
		if (f.field == 1 && f.wt == WT_LEN && is(f.data, f.n, S_METRICS))
			metrics = 1;
	if (k < 0)
		return respond(INVALID_ARGUMENT, "decoding DescribeRequest: not protobuf", 0);
	metrics_offered = metrics;
	buf out = {0};
	pb_string(&out, 1, "notifier-c");
	pb_string(&out, 2, "0.1.0");
	pb_string(&out, 3, "svidagent.plugin.v1.Plugin");
	pb_string(&out, 3, "svidagent.plugin.notifier.v1.Notifier");
	uint64_t ret = out.oom ? respond(RESOURCE_EXHAUSTED, "out of memory", 0) : respond(OK, 0, &out);
	free(out.p);
	return ret;
}

/* config_json is field 1 of both ValidateRequest and ConfigureRequest. */
static int config_json(const uint8_t *p, uint32_t n, const uint8_t **cj, uint32_t *cn)
{
	rd r = {p, p + n};
	pbfield f;
	int k;
	*cj = 0;
	*cn = 0;
	while ((k = rd_next(&r, &f)) > 0)
		if (f.field == 1 && f.wt == WT_LEN)
			*cj = f.data, *cn = f.n;
	return k;
}

static uint64_t validate(const uint8_t *p, uint32_t n)
{
	const uint8_t *cj;
	uint32_t cn;
	char tmp[MAX_PREFIX + 1];
	if (config_json(p, n, &cj, &cn) < 0)
		return respond(INVALID_ARGUMENT, "decoding ValidateRequest: not protobuf", 0);
	problems ps = {0};
	parse_config(cj, cn, &ps, tmp);
	uint64_t ret = ps.enc.oom ? respond(RESOURCE_EXHAUSTED, "out of memory", 0) : respond(OK, 0, &ps.enc);
	free(ps.enc.p);
	return ret;
}

static uint64_t configure(const uint8_t *p, uint32_t n)
{
	const uint8_t *cj;
	uint32_t cn;
	char tmp[MAX_PREFIX + 1];
	if (config_json(p, n, &cj, &cn) < 0)
		return respond(INVALID_ARGUMENT, "decoding ConfigureRequest: not protobuf", 0);
	problems ps = {0};
	parse_config(cj, cn, &ps, tmp);
	free(ps.enc.p);
	if (ps.count)
		return respond(INVALID_ARGUMENT, ps.first, 0);
	memcpy(prefix, tmp, sizeof prefix);
	configured = 1;
	return respond(OK, 0, 0);
}

static void put_reason(buf *b, uint64_t reason)
{
	static const char *names[] = {"x509", "jwt_svid", "jwt_bundle"};
	int any = 0;
	for (int i = 0; i < 3; i++)
		if (reason & 1u << i) {
			if (any++)
				puts_(b, ",");
			puts_(b, names[i]);
		}
	if (!any)
		puts_(b, "nothing");
}

/* count adds 1 to rotations_total{reason} through the Metrics service. */
static void count(uint64_t reason)
{
	if (!metrics_offered)
		return;
	buf lbl = {0}, entry = {0}, req = {0};
	put_reason(&lbl, reason);
	pb_string(&entry, 1, "reason"); /* map entry: key = 1, value = 2 */
	pb_bytes(&entry, 2, lbl.p, lbl.len);
	pb_string(&req, 1, "rotations_total");
	pb_string(&req, 2, "Rotations notifier-c was told of.");
	pb_bytes(&req, 3, entry.p, entry.len);
	double one = 1;
	pb_key(&req, 4, WT_I64);
	put(&req, &one, 8); /* wasm is little-endian, as protobuf's fixed64 */
	int64_t st = req.oom ? -1 : host_service("svidagent.host.v1.Metrics/Counter", &req);
	if (st != OK) {
		buf line = {0};
		puts_(&line, "adding to rotations_total failed; the agent's metrics will undercount rotations");
		logs(LEVEL_WARN, &line);
		free(line.p);
	}
	free(lbl.p);
	free(entry.p);
	free(req.p);
}

/* Notify: NotifyRequest{name = 1, reason = 2, x509 = 5 {spiffe_id = 1, serial = 2}}. */
static uint64_t notify(const uint8_t *p, uint32_t n)
{
	if (!configured)
		return respond(FAILED_PRECONDITION, "Notify before Configure", 0);
	rd r = {p, p + n};
	pbfield f;
	int k;
	const uint8_t *name = 0;
	uint32_t name_n = 0;
	uint64_t reason = 0;
	/* First pass: check the whole message and pick the scalars. */
	while ((k = rd_next(&r, &f)) > 0) {
		if (f.field == 1 && f.wt == WT_LEN)
			name = f.data, name_n = f.n;
		else if (f.field == 2 && f.wt == WT_VARINT)
			reason = f.v;
		else if (f.field == 5 && f.wt == WT_LEN) {
			rd sub = {f.data, f.data + f.n};
			pbfield g;
			int j;
			while ((j = rd_next(&sub, &g)) > 0)
				;
			if (j < 0)
				k = -1;
		}
		if (k < 0)
			break;
	}
	if (k < 0)
		return respond(INVALID_ARGUMENT, "decoding NotifyRequest: not protobuf", 0);

	/* Second pass: one line per X.509 identity. */
	int lines = 0;
	r.p = p;
	while (rd_next(&r, &f) > 0) {
		if (f.field != 5 || f.wt != WT_LEN)
			continue;
		rd sub = {f.data, f.data + f.n};
		pbfield g;
		const uint8_t *id = 0, *serial = 0;
		uint32_t id_n = 0, serial_n = 0;
		while (rd_next(&sub, &g) > 0) {
			if (g.field == 1 && g.wt == WT_LEN)
				id = g.data, id_n = g.n;
			else if (g.field == 2 && g.wt == WT_LEN)
				serial = g.data, serial_n = g.n;
		}
		buf line = {0};
		puts_(&line, prefix);
		puts_(&line, "rotated ");
		put(&line, id, id_n);
		puts_(&line, " serial ");
		put(&line, serial, serial_n);
		puts_(&line, " (svid \"");
		put(&line, name, name_n);
		puts_(&line, "\", ");
		put_reason(&line, reason);
		puts_(&line, ")");
		logs(LEVEL_INFO, &line);
		free(line.p);
		lines++;
	}
	if (!lines) { /* a JWT-only rotation */
		buf line = {0};
		puts_(&line, prefix);
		puts_(&line, "rotated svid \"");
		put(&line, name, name_n);
		puts_(&line, "\" (");
		put_reason(&line, reason);
		puts_(&line, ")");
		logs(LEVEL_INFO, &line);
		free(line.p);
	}
	count(reason);
	return respond(OK, 0, 0); /* NotifyResponse{}: empty */
}

static uint64_t close_(void)
{
	configured = 0;
	prefix[0] = 0;
	return respond(OK, 0, 0);
}

/* ---- §3/§4: svidagent_call ------------------------------------------------ */

static uint64_t dispatch(const uint8_t *req, uint32_t len)
{
	if (len < 4)
		return respond(INVALID_ARGUMENT, "malformed request envelope: shorter than 4 bytes", 0);
	uint32_t ml = req[0] | req[1] << 8 | req[2] << 16 | (uint32_t)req[3] << 24;
	if (ml > len - 4)
		return respond(INVALID_ARGUMENT, "malformed request envelope: method_len past the end", 0);
	const uint8_t *m = req + 4, *payload = m + ml;
	uint32_t pn = len - 4 - ml;
	if (is(m, ml, M_DESCRIBE))
		return describe(payload, pn);
	if (is(m, ml, M_VALIDATE))
		return validate(payload, pn);
	if (is(m, ml, M_CONFIGURE))
		return configure(payload, pn);
	if (is(m, ml, M_CLOSE))
		return close_();
	if (is(m, ml, M_NOTIFY))
		return notify(payload, pn);

	buf msg = {0};
	puts_(&msg, "unknown method ");
	for (uint32_t i = 0; i < ml && i < 200; i++) /* quote it as printable ASCII */
		put(&msg, m[i] >= 0x20 && m[i] < 0x7f ? (const char *)&m[i] : "?", 1);
	put(&msg, "", 1); /* NUL */
	uint64_t ret = msg.oom ? respond(UNIMPLEMENTED, "unknown method", 0) : respond(UNIMPLEMENTED, (char *)msg.p, 0);
	free(msg.p);
	return ret;
}

/* The request buffer came from svidagent_alloc and is ours to free (§3.1). */
EXPORT("svidagent_call") uint64_t svidagent_call(uint8_t *req, uint32_t len)
{
	uint64_t ret = dispatch(req, len);
	free(req);
	return ret;
}
