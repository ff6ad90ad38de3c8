/* The contributor's upload and download loops (client.h). The coordinator's
 * acknowledged offset is the only truth: after any failure the client asks
 * again (UploadBegin with the same envelope) and continues from the offset
 * it is told, so a resend, a lost reply or a restart that cut the staging
 * file back to its last checkpoint all converge on one correct file. */
#include "flexo/client.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <nng/protocol/reqrep0/req.h>

#include "flexo/fsutil.h"
#include "flexo/wire.h"

struct fx_client {
	const fx_client_opts *o;
	nng_socket sock;
};

void fx_client_opts_init(fx_client_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->timeout_ms = FX_NET_TIMEOUT_MS;
	o->verdict_ms = 10 * 60 * 1000;
	o->retries = 30;
	o->chunk = FX_WIRE_CHUNK_MAX;
}

fx_err fx_client_open(fx_client **out, const fx_client_opts *o, fx_diag *diag)
{
	fx_client *c;
	fx_err err;
	int rv;

	if (o->chunk == 0 || o->chunk > FX_WIRE_CHUNK_MAX ||
	    o->timeout_ms <= 0 || o->verdict_ms <= 0 || o->retries < 0)
		return fx_diag_set(
		    diag, FX_EINVAL,
		    "client options: chunk 1..%u bytes, timeouts "
		    "> 0, retries >= 0",
		    FX_WIRE_CHUNK_MAX);
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return fx_diag_set(diag, FX_ENOMEM, "client");
	c->o = o;
	if ((rv = nng_req0_open(&c->sock)) != 0) {
		free(c);
		return fx_net_error(rv, diag, "socket");
	}
	/* Our own loop retries with the session state in hand; nng's blind
	 * resend timer would only duplicate slow requests (admission). */
	rv = nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME,
	                       NNG_DURATION_INFINITE);
	if (rv == 0)
		rv = nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ,
		                         FX_WIRE_MSG_MAX);
	if (rv != 0) {
		err = fx_net_error(rv, diag, "socket options");
		goto fail;
	}
	/* Connect once now, so that a refused TLS handshake (wrong CA, wrong
	 * name) is reported as such; a coordinator that is not up yet is
	 * dialed again in the background until an exchange times out. */
	err = fx_net_dial(c->sock, o->url, &o->tls, FX_WIRE_MSG_MAX, 1, diag);
	if (err == FX_ECRYPTO || err == FX_EINVAL || err == FX_ENOTFOUND ||
	    err == FX_ETOOBIG)
		goto fail;
	if (err != FX_OK &&
	    (err = fx_net_dial(c->sock, o->url, &o->tls, FX_WIRE_MSG_MAX, 0,
	                       diag)) != FX_OK)
		goto fail;
	*out = c;
	return FX_OK;
fail:
	nng_close(c->sock);
	free(c);
	return err;
}

void fx_client_close(fx_client *c)
{
	if (c == NULL)
		return;
	nng_close(c->sock);
	free(c);
}

void fx_submit_result_release(fx_submit_result *r)
{
	free(r->receipt);
	r->receipt = NULL;
	r->receipt_len = 0;
}

/* Sends a packed request (msg is nng's afterwards, also on failure). */
static fx_err send_msg(fx_client *c, nng_msg *msg, fx_diag *diag)
{
	fx_err err;
	int rv;

	nng_socket_set_ms(c->sock, NNG_OPT_SENDTIMEO, c->o->timeout_ms);
	if ((rv = nng_sendmsg(c->sock, msg, 0)) != 0) {
		nng_msg_free(msg);
		err = fx_net_error(rv, diag, "sending");
		fx_diag_prefix(diag, "%s (no connection within %d ms?)",
		               c->o->url, c->o->timeout_ms);
		return err;
	}
	return FX_OK;
}

/* Waits for the reply to the request sent. A coordinator Error becomes its
 * fx_err (codes outside the enum: FX_EPROTO) with its message in diag. */
static fx_err recv_reply(fx_client *c, int timeout_ms,
                         Flexo__V1__Response **resp, fx_diag *diag)
{
	nng_msg *msg = NULL;
	Flexo__V1__Response *r = NULL;
	fx_err err;
	int rv;

	nng_socket_set_ms(c->sock, NNG_OPT_RECVTIMEO, timeout_ms);
	if ((rv = nng_recvmsg(c->sock, &msg, 0)) != 0) {
		err = fx_net_error(rv, diag, "waiting for the reply");
		fx_diag_prefix(diag, "%s", c->o->url);
		return err;
	}
	err = fx_net_unpack(msg, &flexo__v1__response__descriptor,
	                    FX_WIRE_MSG_MAX, (ProtobufCMessage **)&r, diag);
	nng_msg_free(msg);
	if (err != FX_OK) {
		fx_diag_prefix(diag, "coordinator reply");
		return err == FX_ETOOBIG ? err : FX_EPROTO;
	}
	if (r->protocol != FX_WIRE_PROTOCOL) {
		fx_wire_free(&r->base);
		return fx_diag_set(diag, FX_EPROTO,
		                   "coordinator speaks protocol %u, not %d",
		                   r->protocol, FX_WIRE_PROTOCOL);
	}
	if (r->body_case == FLEXO__V1__RESPONSE__BODY_ERROR) {
		uint32_t code = r->error->code;
		err = fx_diag_set(diag,
		                  code > 0 && code < FX_ERR_COUNT ? (fx_err)code
		                                                  : FX_EPROTO,
		                  "coordinator: %s", r->error->message);
		fx_wire_free(&r->base);
		return err;
	}
	*resp = r;
	return FX_OK;
}

/* One request/reply. */
static fx_err exchange(fx_client *c, const Flexo__V1__Request *req,
                       int timeout_ms, Flexo__V1__Response **resp,
                       fx_diag *diag)
{
	nng_msg *msg = NULL;
	fx_err err;

	((Flexo__V1__Request *)req)->protocol = FX_WIRE_PROTOCOL;
	if ((err = fx_net_pack(&req->base, &msg, diag)) != FX_OK ||
	    (err = send_msg(c, msg, diag)) != FX_OK)
		return err;
	return recv_reply(c, timeout_ms, resp, diag);
}

fx_err fx_client_ping(fx_client *c, fx_diag *diag)
{
	Flexo__V1__Request req = FLEXO__V1__REQUEST__INIT;
	Flexo__V1__Response *resp = NULL;
	fx_err err = exchange(c, &req, c->o->timeout_ms, &resp, diag);

	if (err == FX_OK) {
		fx_wire_free(&resp->base);
		return FX_OK;
	}
	/* The expected answer: "empty request". */
	return err == FX_EPROTO ? FX_OK : err;
}

/* Failures worth another try: the network, timeouts, a coordinator that is
 * busy or restarting, a session it no longer knows. A quota or size
 * refusal is final. */
static int transient(fx_err err)
{
	return err == FX_ENET || err == FX_ETIMEOUT || err == FX_ESTATE ||
	       err == FX_ENOTFOUND || err == FX_EIO;
}

static void nap_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static double now_sec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void take_verdict(const Flexo__V1__Verdict *v, fx_submit_result *out)
{
	out->decision = (int)v->decision;
	snprintf(out->gate, sizeof(out->gate), "%s", v->gate ? v->gate : "");
	snprintf(out->reason, sizeof(out->reason), "%s",
	         v->reason ? v->reason : "");
	out->ledger_index = v->ledger_index;
	if (v->contribution_digest.len == FX_BLAKE2B_BYTES)
		memcpy(out->contribution_digest, v->contribution_digest.data,
		       FX_BLAKE2B_BYTES);
	if (v->receipt.len > 0 && (out->receipt = malloc(v->receipt.len))) {
		memcpy(out->receipt, v->receipt.data, v->receipt.len);
		out->receipt_len = v->receipt.len;
	}
}

/* Payload bytes of the chunk at offset. */
static size_t chunk_len(const fx_client_opts *o, uint64_t offset, uint64_t size)
{
	return size - offset < o->chunk ? (size_t)(size - offset) : o->chunk;
}

/* Packs the UploadChunk request `uc` (session already set) for the n
 * payload bytes at offset into *out, reading them from the file straight
 * into the message. `hole` only marks the field (never read). */
static fx_err pack_chunk(int fd, const char *path, Flexo__V1__UploadChunk *uc,
                         uint64_t offset, size_t n, uint8_t *hole,
                         nng_msg **out, fx_diag *diag)
{
	Flexo__V1__Request req = FLEXO__V1__REQUEST__INIT;
	fx_err err;

	uc->offset = offset;
	uc->data.data = hole;
	uc->data.len = n;
	req.protocol = FX_WIRE_PROTOCOL;
	req.body_case = FLEXO__V1__REQUEST__BODY_UPLOAD_CHUNK;
	req.upload_chunk = uc;
	err = fx_net_pack_file(&req.base, hole, n, fd, offset, out, diag);
	if (err == FX_EIO)
		fx_diag_prefix(diag, "payload %s", path);
	return err;
}

/* Progress: redrawn on a terminal, a line per tenth otherwise. */
static void progress(const fx_logger *log, uint64_t done, uint64_t total,
                     double t0, uint64_t *next_line)
{
	char extra[64];
	double dt = now_sec() - t0;

	if (log == NULL || (!log->tty && done < *next_line && done < total))
		return;
	*next_line = done + (total / 10 ? total / 10 : 1);
	snprintf(extra, sizeof(extra), "bytes, %.1f MiB/s",
	         dt > 0 ? (double)done / dt / 1048576.0 : 0.0);
	fx_progress(log, "upload", done, total, extra);
}

fx_err fx_client_submit(fx_client *c, const uint8_t *envelope, size_t len,
                        const char *payload_path, fx_submit_result *out,
                        fx_diag *diag)
{
	const fx_client_opts *o = c->o;
	Flexo__V1__Request req = FLEXO__V1__REQUEST__INIT;
	Flexo__V1__UploadBegin ub = FLEXO__V1__UPLOAD_BEGIN__INIT;
	Flexo__V1__UploadChunk uc = FLEXO__V1__UPLOAD_CHUNK__INIT;
	Flexo__V1__UploadEnd ue = FLEXO__V1__UPLOAD_END__INIT;
	Flexo__V1__Response *resp = NULL;
	fx_submit_result res;
	uint8_t sid[FX_UPLOAD_ID_BYTES], *buf = NULL;
	int have_sid = 0, failures = 0, fd = -1;
	uint64_t size, offset = 0, next_line = 0, rate_bytes = 0, next_off = 0;
	nng_msg *next = NULL; /* the chunk at next_off, packed ahead */
	double t0 = now_sec(), rate_t0 = t0;
	struct stat st;
	fx_err err = FX_OK;

	memset(&res, 0, sizeof(res));
	if ((fd = open(payload_path, O_RDONLY | O_CLOEXEC)) < 0 ||
	    fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		err = fx_diag_set(diag, errno == ENOENT ? FX_ENOTFOUND : FX_EIO,
		                  "payload %s: %s", payload_path,
		                  fd < 0 ? strerror(errno)
		                         : "not a regular file");
		goto out;
	}
	size = (uint64_t)st.st_size;
	/* Marks the chunk's data field for fx_net_pack_file, which reads the
	 * file into the message itself: never written, so never resident. */
	if ((buf = malloc(o->chunk)) == NULL) {
		err = fx_diag_set(diag, FX_ENOMEM, "upload buffer");
		goto out;
	}
	ub.contribution.data = (uint8_t *)envelope;
	ub.contribution.len = len;
	for (;;) {
		/* (Re)start: learn the session and the offset it holds. */
		if (failures > o->retries) {
			fx_diag_prefix(diag, "giving up after %d failures",
			               failures);
			goto out;
		}
		if (failures > 0) {
			res.resumes++;
			nap_ms(failures < 10 ? 100L * failures : 1000L);
		}
		req.body_case = FLEXO__V1__REQUEST__BODY_UPLOAD_BEGIN;
		req.upload_begin = &ub;
		ub.resume_id.data = have_sid ? sid : NULL;
		ub.resume_id.len = have_sid ? sizeof(sid) : 0;
		err = exchange(c, &req, o->timeout_ms, &resp, diag);
		if (err != FX_OK) {
			if (!transient(err))
				goto out;
			fx_log(o->log, FX_WARN, "upload: %s; retrying",
			       diag->msg);
			failures++;
			continue;
		}
		if (resp->body_case == FLEXO__V1__RESPONSE__BODY_VERDICT) {
			take_verdict(resp->verdict, &res); /* refused early */
			goto done;
		}
		if (resp->body_case != FLEXO__V1__RESPONSE__BODY_UPLOAD_BEGIN) {
			err =
			    fx_diag_set(diag, FX_EPROTO,
			                "coordinator answered UploadBegin with "
			                "reply kind %d",
			                (int)resp->body_case);
			goto out;
		}
		memcpy(sid, resp->upload_begin->session_id.data, sizeof(sid));
		have_sid = 1;
		if (resp->upload_begin->offset > size) {
			err = fx_diag_set(
			    diag, FX_EPROTO,
			    "coordinator holds %llu bytes of a %llu "
			    "byte payload",
			    (unsigned long long)resp->upload_begin->offset,
			    (unsigned long long)size);
			goto out;
		}
		if (resp->upload_begin->offset > 0 &&
		    offset != resp->upload_begin->offset)
			fx_log(o->log, FX_INFO,
			       "upload: continuing at byte %llu",
			       (unsigned long long)resp->upload_begin->offset);
		offset = resp->upload_begin->offset;
		fx_wire_free(&resp->base);
		resp = NULL;

		/* Chunks, each acknowledged with the offset reached. While
		 * one is on its way the next is read and packed, so the file
		 * read overlaps the coordinator's work; it is thrown away if
		 * the acknowledgement moves elsewhere. */
		uc.session_id.data = sid;
		uc.session_id.len = sizeof(sid);
		nng_msg_free(next); /* packed for a session begun before */
		next = NULL;
		while (offset < size) {
			size_t n = chunk_len(o, offset, size);
			nng_msg *cur = next;
			next = NULL;
			if (cur == NULL || next_off != offset) {
				nng_msg_free(cur);
				if ((err = pack_chunk(fd, payload_path, &uc,
				                      offset, n, buf, &cur,
				                      diag)) != FX_OK)
					goto out;
			}
			if ((err = send_msg(c, cur, diag)) != FX_OK)
				break;
			next_off = offset + n;
			if (next_off < size &&
			    (err = pack_chunk(fd, payload_path, &uc, next_off,
			                      chunk_len(o, next_off, size), buf,
			                      &next, diag)) != FX_OK)
				goto out;
			err = recv_reply(c, o->timeout_ms, &resp, diag);
			if (err != FX_OK)
				break;
			res.sent += n;
			if (resp->body_case !=
			        FLEXO__V1__RESPONSE__BODY_UPLOAD_ACK ||
			    resp->upload_ack->offset > size) {
				err =
				    fx_diag_set(diag, FX_EPROTO,
				                "coordinator sent no valid "
				                "acknowledgement for a chunk");
				goto out;
			}
			if (resp->upload_ack->offset != offset + n) {
				/* Resent after a drop or a restart cut the
				 * staging file back: continue where it is. */
				res.rewinds++;
				fx_log(o->log, FX_INFO,
				       "upload: coordinator holds %llu bytes; "
				       "continuing there",
				       (unsigned long long)
				           resp->upload_ack->offset);
			}
			offset = resp->upload_ack->offset;
			fx_wire_free(&resp->base);
			resp = NULL;
			failures = 0;
			progress(o->log, offset, size, t0, &next_line);
			if (o->max_rate > 0) {
				double ahead;
				rate_bytes += n;
				ahead =
				    (double)rate_bytes / (double)o->max_rate -
				    (now_sec() - rate_t0);
				if (ahead > 0)
					nap_ms((long)(ahead * 1000.0));
			}
		}
		if (err == FX_ESTATE) {
			/* The coordinator holds the complete payload (a
			 * finished or admitting session): ask for the verdict.
			 */
			err = FX_OK;
		}
		if (err != FX_OK) {
			fx_progress_end(o->log);
			if (!transient(err))
				goto out;
			fx_log(o->log, FX_WARN, "upload: %s; resuming",
			       diag->msg);
			failures++;
			continue;
		}
		fx_progress_end(o->log);

		/* Complete: ask for the verdict. */
		ue.session_id.data = sid;
		ue.session_id.len = sizeof(sid);
		req.body_case = FLEXO__V1__REQUEST__BODY_UPLOAD_END;
		req.upload_end = &ue;
		err = exchange(c, &req, o->verdict_ms, &resp, diag);
		if (err != FX_OK) {
			if (!transient(err))
				goto out;
			fx_log(o->log, err == FX_ESTATE ? FX_DEBUG : FX_WARN,
			       "verdict: %s; asking again", diag->msg);
			failures++;
			continue;
		}
		if (resp->body_case != FLEXO__V1__RESPONSE__BODY_VERDICT) {
			err = fx_diag_set(
			    diag, FX_EPROTO,
			    "coordinator answered UploadEnd with reply "
			    "kind %d",
			    (int)resp->body_case);
			goto out;
		}
		take_verdict(resp->verdict, &res);
		goto done;
	}
done:
	err = FX_OK;
	*out = res;
	memset(&res, 0, sizeof(res));
out:
	if (resp != NULL)
		fx_wire_free(&resp->base);
	nng_msg_free(next);
	fx_submit_result_release(&res);
	free(buf);
	if (fd >= 0)
		close(fd);
	return err;
}

fx_err fx_client_fetch(fx_client *c, const char *name, const char *dest,
                       uint64_t max_size, fx_diag *diag)
{
	const fx_client_opts *o = c->o;
	Flexo__V1__Request req = FLEXO__V1__REQUEST__INIT;
	Flexo__V1__FileRequest fr = FLEXO__V1__FILE_REQUEST__INIT;
	Flexo__V1__Response *resp = NULL;
	fx_atomic_file af;
	uint64_t offset = 0, size = UINT64_MAX;
	int failures = 0, opened = 0;
	fx_err err;

	if ((err = fx_atomic_open(&af, dest, 0644, diag)) != FX_OK)
		return err;
	opened = 1;
	fr.name = (char *)name;
	while (offset < size) {
		const Flexo__V1__FileChunk *fc;
		fr.offset = offset;
		fr.max = (uint32_t)o->chunk;
		req.body_case = FLEXO__V1__REQUEST__BODY_FILE;
		req.file = &fr;
		err = exchange(c, &req, o->timeout_ms, &resp, diag);
		if (err != FX_OK) {
			if ((err != FX_ENET && err != FX_ETIMEOUT) ||
			    ++failures > o->retries)
				goto out;
			fx_log(o->log, FX_WARN, "fetch %s: %s; retrying", name,
			       diag->msg);
			nap_ms(failures < 10 ? 100L * failures : 1000L);
			continue;
		}
		failures = 0;
		fc = resp->file;
		if (resp->body_case != FLEXO__V1__RESPONSE__BODY_FILE ||
		    strcmp(fc->name, name) != 0 || fc->offset != offset ||
		    (size != UINT64_MAX && fc->size != size) ||
		    fc->data.len > fc->size - offset ||
		    (fc->data.len == 0 && offset < fc->size)) {
			err = fx_diag_set(diag, FX_EPROTO,
			                  "coordinator sent a bad chunk of %s",
			                  name);
			goto out;
		}
		if (fc->size > max_size) {
			err =
			    fx_diag_set(diag, FX_ETOOBIG,
			                "%s is %llu bytes, more than the %llu "
			                "accepted",
			                name, (unsigned long long)fc->size,
			                (unsigned long long)max_size);
			goto out;
		}
		size = fc->size;
		if ((err = fx_atomic_write(&af, fc->data.data, fc->data.len,
		                           diag)) != FX_OK)
			goto out;
		offset += fc->data.len;
		fx_wire_free(&resp->base);
		resp = NULL;
		if (o->log != NULL && o->log->tty)
			fx_progress(o->log, name, offset, size, "bytes");
	}
	fx_progress_end(o->log);
	err = fx_atomic_commit(&af, diag);
out:
	if (resp != NULL)
		fx_wire_free(&resp->base);
	if (opened)
		fx_atomic_abort(&af);
	return err;
}
