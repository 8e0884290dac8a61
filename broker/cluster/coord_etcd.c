/*
 * coord_etcd: the coordination store is etcd, through its v3 JSON gateway
 * (POST /v3/kv/range, /v3/kv/txn, /v3/lease/grant, keepalive, revoke;
 * keys and values base64, 64-bit numbers as strings) with libcurl and
 * cJSON. One curl handle, its connection reused; a request that cannot
 * reach an endpoint (refused, timed out, 5xx) goes to the next one, and
 * fails with -EIO once each has been tried. With a user, a token from
 * /v3/auth/authenticate goes in every request's Authorization header,
 * and is asked again once when etcd says it is no longer valid.
 */
#define _GNU_SOURCE
#include "cluster/coord.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/clock.h"
#include "lib/log.h"
#include "lib/vec.h"

#define ETCD_ENDPOINTS_MAX 8
#define ETCD_ANSWER_MAX	   (64u << 20) /* a range of the whole prefix */

struct etcd {
	CURL *curl;
	char *endpoints[ETCD_ENDPOINTS_MAX]; /* owned */
	size_t nendpoints, current;
	char *user, *password, *ca_file; /* owned; NULL: none */
	char *token;			 /* owned; NULL: none yet */
	long timeout_ms;
	const _Atomic uint64_t *abort_at_ms; /* borrowed; NULL: never */
	/* The answer being read. */
	char *answer;
	size_t answer_len, answer_cap;
	int is_too_long;
};

/* ------------------------------------------------------------ base64 */

static char *
b64_encode(const char *s, size_t len)
{
	char *out = malloc(4 * ((len + 2) / 3) + 1);

	if (out != NULL)
		EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s,
				(int)len);
	return out;
}

/* The text base64 text b stands for, NUL-terminated; NULL if it is not
 * base64 (or holds a NUL). */
static char *
b64_decode(const char *b)
{
	size_t len = strlen(b);
	char *out;
	int n;

	if (len % 4 != 0)
		return NULL;
	out = malloc(len / 4 * 3 + 1);
	if (out == NULL)
		return NULL;
	n = EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)b,
			    (int)len);
	if (n < 0) {
		free(out);
		return NULL;
	}
	/* EVP_DecodeBlock counts the padding's bytes too. */
	if (len >= 1 && b[len - 1] == '=')
		n--;
	if (len >= 2 && b[len - 2] == '=')
		n--;
	out[n] = '\0';
	if (strlen(out) != (size_t)n) {
		free(out);
		return NULL;
	}
	return out;
}

/* The first key after every key that starts with prefix (etcd's
 * range_end of a prefix), base64. */
static char *
prefix_end_b64(const char *prefix)
{
	size_t len = strlen(prefix);
	char *end = strdup(prefix), *b;

	if (end == NULL)
		return NULL;
	while (len > 0 && (unsigned char)end[len - 1] == 0xff)
		len--;
	if (len == 0) {
		free(end);
		return strdup("AA=="); /* "\0": every key */
	}
	end[len - 1] = (char)((unsigned char)end[len - 1] + 1);
	b = b64_encode(end, len);
	free(end);
	return b;
}

/* ----------------------------------------------------------- requests */

static size_t
on_data(char *data, size_t size, size_t n, void *arg)
{
	struct etcd *e = arg;
	size_t len = size * n;
	char *v;

	if (e->answer_len + len + 1 > ETCD_ANSWER_MAX) {
		e->is_too_long = 1;
		return 0;
	}
	v = vec_grow(e->answer, &e->answer_cap, e->answer_len + len + 1, 1,
		     4096);
	if (v == NULL)
		return 0;
	e->answer = v;
	memcpy(e->answer + e->answer_len, data, len);
	e->answer_len += len;
	e->answer[e->answer_len] = '\0';
	return len;
}

/* libcurl's progress callback: non-zero ends the transfer. */
static int
on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
	    curl_off_t ulnow)
{
	const struct etcd *e = arg;
	uint64_t at = e->abort_at_ms != NULL ? *e->abort_at_ms : 0;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return at != 0 && clock_mono_ms() >= at;
}

static int post(struct etcd *e, const char *path, cJSON *body, cJSON **out);

static int
authenticate(struct etcd *e)
{
	cJSON *req = cJSON_CreateObject(), *ans = NULL;
	const cJSON *tok;
	char *user = e->user;
	int rc;

	free(e->token);
	e->token = NULL;
	if (req == NULL || !cJSON_AddStringToObject(req, "name", e->user) ||
	    !cJSON_AddStringToObject(req, "password", e->password)) {
		cJSON_Delete(req);
		return -ENOMEM;
	}
	e->user = NULL; /* this request goes without a token */
	rc = post(e, "/v3/auth/authenticate", req, &ans);
	e->user = user;
	cJSON_Delete(req);
	if (rc < 0)
		return rc;
	tok = cJSON_GetObjectItemCaseSensitive(ans, "token");
	if (!cJSON_IsString(tok)) {
		cJSON_Delete(ans);
		log_warn("cluster: etcd refused user %s", e->user);
		return -EACCES;
	}
	e->token = strdup(tok->valuestring);
	cJSON_Delete(ans);
	return e->token ? 0 : -ENOMEM;
}

/* One POST to one endpoint. @return 0 (answer read, *status set), or
 * -EIO when the endpoint could not answer. */
static int
post_once(struct etcd *e, const char *url, const char *json, long *status)
{
	struct curl_slist *h = NULL;
	char auth[1024];
	CURLcode cc;

	e->answer_len = 0;
	e->is_too_long = 0;
	h = curl_slist_append(h, "Content-Type: application/json");
	if (e->user != NULL && e->token != NULL) {
		snprintf(auth, sizeof(auth), "Authorization: %s", e->token);
		h = curl_slist_append(h, auth);
	}
	curl_easy_setopt(e->curl, CURLOPT_URL, url);
	curl_easy_setopt(e->curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(e->curl, CURLOPT_POSTFIELDS, json);
	cc = curl_easy_perform(e->curl);
	curl_slist_free_all(h);
	if (cc == CURLE_ABORTED_BY_CALLBACK)
		return -ECANCELED;
	if (cc != CURLE_OK) {
		log_warn("cluster: etcd %s: %s", url, curl_easy_strerror(cc));
		return -EIO;
	}
	curl_easy_getinfo(e->curl, CURLINFO_RESPONSE_CODE, status);
	if (*status >= 500 && *status != 501) {
		log_warn("cluster: etcd %s answered %ld", url, *status);
		return -EIO;
	}
	return 0;
}

/*
 * POSTs body to path, at the current endpoint, then the others. *out:
 * the answer (the caller frees it). @return 0, -EIO (no endpoint
 * answered), -ENOENT (etcd: not found, e.g. a lease), -EACCES (auth),
 * -EPROTO (an answer that is not JSON, or another error).
 */
static int
post(struct etcd *e, const char *path, cJSON *body, cJSON **out)
{
	char *json = cJSON_PrintUnformatted(body);
	int rc = -EIO, is_retried = 0;

	*out = NULL;
	if (json == NULL)
		return -ENOMEM;
	if (e->user != NULL && e->token == NULL && (rc = authenticate(e)) < 0)
		goto done;
again:
	rc = -EIO;
	for (size_t tries = 0; tries < e->nendpoints; tries++) {
		char url[1024];
		long status = 0;

		snprintf(url, sizeof(url), "%s%s", e->endpoints[e->current],
			 path);
		rc = post_once(e, url, json, &status);
		if (rc == -ECANCELED)
			break;
		if (rc < 0) {
			e->current = (e->current + 1) % e->nendpoints;
			rc = -EIO;
			continue;
		}
		*out = cJSON_ParseWithLength(e->answer, e->answer_len);
		if (*out == NULL) {
			rc = -EPROTO;
			break;
		}
		{
			const cJSON *err =
				cJSON_GetObjectItemCaseSensitive(*out, "error");
			const cJSON *code =
				cJSON_GetObjectItemCaseSensitive(*out, "code");

			if (!cJSON_IsString(err) && status == 200) {
				rc = 0;
				break;
			}
			rc = -EPROTO;
			if (cJSON_IsNumber(code) && code->valueint == 5)
				rc = -ENOENT; /* gRPC NOT_FOUND */
			else if (cJSON_IsNumber(code) &&
				 (code->valueint == 16 || code->valueint == 7))
				rc = -EACCES; /* UNAUTHENTICATED, DENIED */
			if (rc == -EPROTO)
				log_warn("cluster: etcd %s: %s", path,
					 cJSON_IsString(err) ? err->valuestring
							     : "an error");
			cJSON_Delete(*out);
			*out = NULL;
			break;
		}
	}
	/* A token that expired: one new one, one more try. */
	if (rc == -EACCES && e->user != NULL && !is_retried) {
		is_retried = 1;
		if ((rc = authenticate(e)) == 0)
			goto again;
	}
done:
	free(json);
	return rc;
}

static int64_t
num(const cJSON *obj, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

	if (cJSON_IsString(v))
		return strtoll(v->valuestring, NULL, 10);
	if (cJSON_IsNumber(v))
		return (int64_t)v->valuedouble;
	return 0; /* proto3: zero is left out */
}

static int64_t
header_rev(const cJSON *ans)
{
	return num(cJSON_GetObjectItemCaseSensitive(ans, "header"), "revision");
}

/* Adds name: "N" (64-bit numbers go as strings). */
static int
add_num(cJSON *obj, const char *name, int64_t n)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%lld", (long long)n);
	return cJSON_AddStringToObject(obj, name, buf) != NULL;
}

/* Adds name: base64(s). */
static int
add_b64(cJSON *obj, const char *name, const char *s)
{
	char *b = b64_encode(s, strlen(s));
	int ok = b != NULL && cJSON_AddStringToObject(obj, name, b) != NULL;

	free(b);
	return ok;
}

/* ------------------------------------------------------------ the ops */

static int
etcd_range(void *be, const char *prefix, struct coord_kvs *out)
{
	struct etcd *e = be;
	cJSON *req = cJSON_CreateObject(), *ans = NULL;
	const cJSON *kvs, *kv;
	char *end = prefix_end_b64(prefix);
	int rc = -ENOMEM;

	coord_kvs_free(out);
	if (req == NULL || end == NULL || !add_b64(req, "key", prefix) ||
	    cJSON_AddStringToObject(req, "range_end", end) == NULL)
		goto out;
	rc = post(e, "/v3/kv/range", req, &ans);
	if (rc < 0)
		goto out;
	out->rev = header_rev(ans);
	kvs = cJSON_GetObjectItemCaseSensitive(ans, "kvs");
	cJSON_ArrayForEach(kv, kvs)
	{
		const cJSON *k = cJSON_GetObjectItemCaseSensitive(kv, "key");
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(kv, "value");
		struct coord_kv *x;

		x = vec_grow(out->v, &out->cap, out->n + 1, sizeof(*x), 16);
		if (x == NULL) {
			rc = -ENOMEM;
			goto out;
		}
		out->v = x;
		x = &out->v[out->n];
		memset(x, 0, sizeof(*x));
		x->key = cJSON_IsString(k) ? b64_decode(k->valuestring) : NULL;
		/* An empty value is left out. */
		x->value = cJSON_IsString(v) ? b64_decode(v->valuestring)
					     : strdup("");
		x->create_rev = num(kv, "create_revision");
		x->mod_rev = num(kv, "mod_revision");
		x->lease = num(kv, "lease");
		out->n++;
		if (x->key == NULL || x->value == NULL) {
			rc = -EPROTO;
			goto out;
		}
	}
	rc = 0;
out:
	if (rc < 0)
		coord_kvs_free(out);
	cJSON_Delete(req);
	cJSON_Delete(ans);
	free(end);
	return rc;
}

static const char *const targets[] = {
	[COORD_CREATE_REV] = "CREATE",
	[COORD_MOD_REV] = "MOD",
	[COORD_VALUE] = "VALUE",
};

static int
etcd_txn(void *be, const struct coord_cmp *cmp, size_t ncmp,
	 const struct coord_op *ops, size_t nops, int *succeeded, int64_t *rev)
{
	struct etcd *e = be;
	cJSON *req = cJSON_CreateObject(), *ans = NULL;
	cJSON *cmps = cJSON_AddArrayToObject(req, "compare");
	cJSON *then = cJSON_AddArrayToObject(req, "success");
	const cJSON *ok;
	int rc = -ENOMEM;

	*succeeded = 0;
	if (req == NULL || cmps == NULL || then == NULL)
		goto out;
	for (size_t i = 0; i < ncmp; i++) {
		cJSON *c = cJSON_CreateObject();

		if (c == NULL || !cJSON_AddItemToArray(cmps, c) ||
		    !add_b64(c, "key", cmp[i].key) ||
		    !cJSON_AddStringToObject(c, "target",
					     targets[cmp[i].target]) ||
		    !cJSON_AddStringToObject(c, "result", "EQUAL"))
			goto out;
		if (cmp[i].target == COORD_VALUE
			    ? !add_b64(c, "value", cmp[i].value)
			    : !add_num(c,
				       cmp[i].target == COORD_CREATE_REV
					       ? "create_revision"
					       : "mod_revision",
				       cmp[i].rev))
			goto out;
	}
	for (size_t i = 0; i < nops; i++) {
		cJSON *o = cJSON_CreateObject(), *r;

		if (o == NULL || !cJSON_AddItemToArray(then, o))
			goto out;
		r = cJSON_AddObjectToObject(
			o, ops[i].kind == COORD_PUT ? "request_put"
						    : "request_delete_range");
		if (r == NULL || !add_b64(r, "key", ops[i].key))
			goto out;
		if (ops[i].kind == COORD_PUT &&
		    (!add_b64(r, "value", ops[i].value) ||
		     (ops[i].lease != 0 && !add_num(r, "lease", ops[i].lease))))
			goto out;
	}
	rc = post(e, "/v3/kv/txn", req, &ans);
	if (rc < 0)
		goto out;
	ok = cJSON_GetObjectItemCaseSensitive(ans, "succeeded");
	*succeeded = cJSON_IsTrue(ok);
	*rev = header_rev(ans);
out:
	cJSON_Delete(req);
	cJSON_Delete(ans);
	return rc;
}

static int
etcd_lease_grant(void *be, int64_t ttl_ms, int64_t *id)
{
	struct etcd *e = be;
	cJSON *req = cJSON_CreateObject(), *ans = NULL;
	int rc = -ENOMEM;

	if (ttl_ms <= 0) {
		cJSON_Delete(req);
		return -EINVAL;
	}
	/* Whole seconds, rounded up (etcd raises it to its minimum). */
	if (req == NULL || !add_num(req, "TTL", (ttl_ms + 999) / 1000))
		goto out;
	rc = post(e, "/v3/lease/grant", req, &ans);
	if (rc < 0)
		goto out;
	*id = num(ans, "ID");
	rc = *id != 0 ? 0 : -EPROTO;
out:
	cJSON_Delete(req);
	cJSON_Delete(ans);
	return rc;
}

static int
lease_call(struct etcd *e, const char *path, int64_t id, cJSON **ans)
{
	cJSON *req = cJSON_CreateObject();
	int rc = -ENOMEM;

	*ans = NULL;
	if (req != NULL && add_num(req, "ID", id))
		rc = post(e, path, req, ans);
	cJSON_Delete(req);
	return rc;
}

static int
etcd_lease_keepalive(void *be, int64_t id)
{
	cJSON *ans;
	int rc = lease_call(be, "/v3/lease/keepalive", id, &ans);

	if (rc == 0) {
		/* A stream of results: one here. An expired lease comes
		 * back with no TTL. */
		const cJSON *r =
			cJSON_GetObjectItemCaseSensitive(ans, "result");

		rc = num(r, "TTL") > 0 ? 0 : -ENOENT;
	}
	cJSON_Delete(ans);
	return rc;
}

static int
etcd_lease_revoke(void *be, int64_t id)
{
	cJSON *ans;
	int rc = lease_call(be, "/v3/lease/revoke", id, &ans);

	cJSON_Delete(ans);
	return rc;
}

static void
etcd_free(void *be)
{
	struct etcd *e = be;

	if (e == NULL)
		return;
	if (e->curl != NULL)
		curl_easy_cleanup(e->curl);
	for (size_t i = 0; i < e->nendpoints; i++)
		free(e->endpoints[i]);
	free(e->user);
	if (e->password != NULL)
		explicit_bzero(e->password, strlen(e->password));
	free(e->password);
	free(e->ca_file);
	free(e->token);
	free(e->answer);
	free(e);
}

static const struct coord_ops etcd_ops = {
	.range = etcd_range,
	.txn = etcd_txn,
	.lease_grant = etcd_lease_grant,
	.lease_keepalive = etcd_lease_keepalive,
	.lease_revoke = etcd_lease_revoke,
	.free = etcd_free,
};

int
coord_etcd_open(struct coord *out, const struct coord_etcd_cfg *cfg)
{
	struct etcd *e = calloc(1, sizeof(*e));
	char *list, *save = NULL;
	int rc = -ENOMEM;

	memset(out, 0, sizeof(*out));
	if (e == NULL)
		return -ENOMEM;
	list = strdup(cfg->endpoints ? cfg->endpoints : "");
	if (list == NULL)
		goto fail;
	for (char *t = strtok_r(list, ",", &save); t != NULL;
	     t = strtok_r(NULL, ",", &save)) {
		size_t n = strlen(t);

		while (n > 0 && t[n - 1] == '/')
			t[--n] = '\0';
		if (e->nendpoints == ETCD_ENDPOINTS_MAX ||
		    (strncmp(t, "http://", 7) != 0 &&
		     strncmp(t, "https://", 8) != 0)) {
			rc = -EINVAL;
			free(list);
			goto fail;
		}
		if ((e->endpoints[e->nendpoints++] = strdup(t)) == NULL) {
			free(list);
			goto fail;
		}
	}
	free(list);
	if (e->nendpoints == 0 ||
	    (cfg->user != NULL) != (cfg->password != NULL)) {
		rc = -EINVAL;
		goto fail;
	}
	if ((cfg->user && (e->user = strdup(cfg->user)) == NULL) ||
	    (cfg->password && (e->password = strdup(cfg->password)) == NULL) ||
	    (cfg->ca_file && (e->ca_file = strdup(cfg->ca_file)) == NULL))
		goto fail;
	e->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 5000;
	e->abort_at_ms = cfg->abort_at_ms;
	e->curl = curl_easy_init();
	if (e->curl == NULL)
		goto fail;
	curl_easy_setopt(e->curl, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(e->curl, CURLOPT_WRITEDATA, e);
	curl_easy_setopt(e->curl, CURLOPT_TIMEOUT_MS, e->timeout_ms);
	curl_easy_setopt(e->curl, CURLOPT_CONNECTTIMEOUT_MS,
			 e->timeout_ms < 2000 ? e->timeout_ms : 2000);
	curl_easy_setopt(e->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e->curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(e->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(e->curl, CURLOPT_XFERINFODATA, e);
	curl_easy_setopt(e->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	if (e->ca_file != NULL)
		curl_easy_setopt(e->curl, CURLOPT_CAINFO, e->ca_file);
	out->ops = &etcd_ops;
	out->be = e;
	return 0;
fail:
	etcd_free(e);
	return rc;
}
