/* The coordinator's contribution endpoint (service.h). Each worker is one
 * nng context with one aio, cycling RECV -> (handle) -> SEND -> RECV, as in
 * nng's asynchronous reqrep server demo. Slow work never runs on nng's own
 * threads: a chunk is parked (WAIT) on a write lane — a thread that takes
 * it (offset check), replies, writes it to the staging file and hands it
 * to a hash lane — and UploadEnd on the admission lane. Writing and hashing
 * run on two threads, so a session's next chunk travels and is written
 * while the one before is hashed (the digest is the slowest stage: it
 * should never wait).
 * One session always maps to the same write and hash lanes, so its chunks
 * stay in order. After a reply is handed to nng a handler touches only its
 * locals: the send may complete and the worker serve its next request. */
#include "flexo/service.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nng/protocol/reqrep0/rep.h>

#include "flexo/fsutil.h"
#include "flexo/hash.h"
#include "flexo/wire.h"

enum { W_RECV, W_SEND, W_WAIT };

#define CHUNK_LANES 2 /* threads writing chunks, and as many hashing them */
/* Chunks queued for hashing per hash lane (one more is being hashed): the
 * write lane waits for room, which bounds the memory held between the
 * stages and lets the contributor's pace follow the digest's. */
#define HASH_QUEUE_MAX 2

/* An item on a lane's FIFO (first member of what is queued). */
typedef struct job {
	struct job *next;
} job;

typedef struct worker {
	job link; /* lane queue link (first: a worker is a job) */
	fx_service *svc;
	nng_aio *aio;
	nng_ctx ctx;
	int state;
	uint8_t session[FX_UPLOAD_ID_BYTES]; /* W_WAIT: upload to admit */
	Flexo__V1__Request *req; /* W_WAIT: chunk to store (owned) */
} worker;

/* A written chunk waiting to be hashed: owns the decoded request. */
typedef struct hash_job {
	job link; /* first */
	Flexo__V1__Request *req;
} hash_job;

/* A thread with a FIFO of jobs, bounded (pushers wait) if max > 0. */
typedef struct lane {
	fx_service *svc;
	void (*run)(fx_service *, job *);
	void (*drop)(job *); /* a job never run (stopping) */
	pthread_t thread;
	int started;
	pthread_mutex_t mu;
	pthread_cond_t cv;   /* work queued, or stopping */
	pthread_cond_t room; /* queue shrank, or stopping */
	job *head, *tail;
	size_t len, max;
	int stopping;
} lane;

struct fx_service {
	const fx_service_config *cfg;
	nng_socket sock;
	int sock_open;
	fx_upload_store *store;
	worker *workers;
	int n_workers;
	lane admit;
	lane writes[CHUNK_LANES];
	lane hashes[CHUNK_LANES];
};

void fx_service_config_init(fx_service_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->contexts = 32;
	cfg->timeout_ms = FX_NET_TIMEOUT_MS;
	fx_upload_limits_default(&cfg->limits);
}

static void recv_next(worker *w)
{
	w->state = W_RECV;
	nng_ctx_recv(w->ctx, w->aio);
}

/* Packs and sends resp; on failure falls back to an Error, and if even that
 * cannot be built, goes back to receiving (the client times out). */
static void send_response(worker *w, Flexo__V1__Response *resp)
{
	nng_msg *msg = NULL;
	fx_diag d = {{0}};

	resp->protocol = FX_WIRE_PROTOCOL;
	if (fx_net_pack(&resp->base, &msg, &d) != FX_OK) {
		Flexo__V1__Response r = FLEXO__V1__RESPONSE__INIT;
		Flexo__V1__Error e = FLEXO__V1__ERROR__INIT;
		fx_log(w->svc->cfg->log, FX_ERROR, "reply: %s", d.msg);
		e.code = FX_EINTERNAL;
		e.message = d.msg;
		r.protocol = FX_WIRE_PROTOCOL;
		r.body_case = FLEXO__V1__RESPONSE__BODY_ERROR;
		r.error = &e;
		if (fx_net_pack(&r.base, &msg, NULL) != FX_OK) {
			recv_next(w);
			return;
		}
	}
	nng_aio_set_msg(w->aio, msg);
	nng_aio_set_timeout(w->aio, w->svc->cfg->timeout_ms);
	w->state = W_SEND;
	nng_ctx_send(w->ctx, w->aio);
}

static void send_error(worker *w, fx_err err, const char *text)
{
	Flexo__V1__Response r = FLEXO__V1__RESPONSE__INIT;
	Flexo__V1__Error e = FLEXO__V1__ERROR__INIT;
	char buf[FX_VERDICT_REASON_MAX + 1];

	snprintf(buf, sizeof(buf), "%s",
	         text && text[0] ? text : fx_strerror(err));
	e.code = (uint32_t)err;
	e.message = buf;
	r.body_case = FLEXO__V1__RESPONSE__BODY_ERROR;
	r.error = &e;
	send_response(w, &r);
}

static void send_ack(worker *w, const uint8_t *sid, uint64_t offset)
{
	Flexo__V1__Response r = FLEXO__V1__RESPONSE__INIT;
	Flexo__V1__UploadAck a = FLEXO__V1__UPLOAD_ACK__INIT;

	a.session_id.data = (uint8_t *)sid;
	a.session_id.len = FX_UPLOAD_ID_BYTES;
	a.offset = offset;
	r.body_case = FLEXO__V1__RESPONSE__BODY_UPLOAD_ACK;
	r.upload_ack = &a;
	send_response(w, &r);
}

/* Sends a stored (encoded) verdict. */
static void send_verdict_bytes(worker *w, const uint8_t *buf, size_t len)
{
	Flexo__V1__Response r = FLEXO__V1__RESPONSE__INIT;
	ProtobufCMessage *v = NULL;
	fx_diag d = {{0}};

	if (fx_wire_decode(&flexo__v1__verdict__descriptor, buf, len,
	                   FX_UPLOAD_VERDICT_MAX, &v, &d) != FX_OK) {
		send_error(w, FX_EINTERNAL, d.msg);
		return;
	}
	r.body_case = FLEXO__V1__RESPONSE__BODY_VERDICT;
	r.verdict = (Flexo__V1__Verdict *)v;
	send_response(w, &r);
	fx_wire_free(v);
}

/* Fills a Verdict message from v; contribution digest = BLAKE2b-256 of the
 * Contribution payload bytes inside the envelope. */
static void verdict_msg(Flexo__V1__Verdict *m, const fx_verdict *v,
                        uint8_t digest[FX_BLAKE2B_BYTES], const uint8_t *env,
                        size_t env_len)
{
	Flexo__V1__Envelope *e = NULL;

	flexo__v1__verdict__init(m);
	if (fx_envelope_open(env, env_len, FX_TYPE_CONTRIBUTION, &e, NULL) ==
	    FX_OK) {
		fx_blake2b(digest, e->payload.data, e->payload.len);
		m->contribution_digest.data = digest;
		m->contribution_digest.len = FX_BLAKE2B_BYTES;
		fx_wire_free(&e->base);
	}
	m->decision = (Flexo__V1__Decision)v->decision;
	m->gate = (char *)v->gate;
	m->reason = (char *)v->reason;
	m->ledger_index = v->ledger_index;
	if (v->receipt_len > 0) {
		m->receipt.data = v->receipt;
		m->receipt.len = v->receipt_len;
	}
}

static void verdict_release(fx_verdict *v)
{
	free(v->receipt);
	v->receipt = NULL;
	v->receipt_len = 0;
}

static const char *decision_name(int d)
{
	switch (d) {
	case FLEXO__V1__DECISION__DECISION_ACCEPTED:
		return "accepted";
	case FLEXO__V1__DECISION__DECISION_REJECTED:
		return "rejected";
	case FLEXO__V1__DECISION__DECISION_WITHDRAWN:
		return "withdrawn";
	default:
		return "undecided";
	}
}

static void handle_begin(worker *w, const Flexo__V1__UploadBegin *ub)
{
	fx_service *svc = w->svc;
	const fx_service_config *cfg = svc->cfg;
	Flexo__V1__Envelope *env = NULL;
	Flexo__V1__Contribution *c = NULL;
	Flexo__V1__Response r = FLEXO__V1__RESPONSE__INIT;
	Flexo__V1__UploadBeginReply br = FLEXO__V1__UPLOAD_BEGIN_REPLY__INIT;
	fx_upload_claim claim;
	uint8_t sid[FX_UPLOAD_ID_BYTES];
	char hex[2 * FX_UPLOAD_ID_BYTES + 1];
	uint64_t offset = 0;
	fx_diag d = {{0}};
	fx_err err;

	err = fx_envelope_open(ub->contribution.data, ub->contribution.len,
	                       FX_TYPE_CONTRIBUTION, &env, &d);
	if (err == FX_OK)
		err = fx_wire_decode(&flexo__v1__contribution__descriptor,
		                     env->payload.data, env->payload.len,
		                     FX_WIRE_DOC_MAX, (ProtobufCMessage **)&c,
		                     &d);
	if (err != FX_OK) {
		fx_diag_prefix(&d, "contribution");
		send_error(w, err, d.msg);
		goto out;
	}
	if (cfg->precheck != NULL) {
		fx_verdict v;
		memset(&v, 0, sizeof(v));
		err = cfg->precheck(cfg->ctx, ub->contribution.data,
		                    ub->contribution.len, &v, &d);
		if (err == FX_OK &&
		    v.decision != FLEXO__V1__DECISION__DECISION_ACCEPTED) {
			Flexo__V1__Verdict vm;
			uint8_t digest[FX_BLAKE2B_BYTES];
			verdict_msg(&vm, &v, digest, ub->contribution.data,
			            ub->contribution.len);
			fx_log(cfg->log, FX_INFO,
			       "upload refused at begin (%s): %s", v.gate,
			       v.reason);
			r.body_case = FLEXO__V1__RESPONSE__BODY_VERDICT;
			r.verdict = &vm;
			send_response(w, &r);
			verdict_release(&v);
			goto out;
		}
		verdict_release(&v);
		if (err != FX_OK) {
			send_error(w, err, d.msg);
			goto out;
		}
	}
	memcpy(claim.key_id, c->contributor_key_id.data, FX_KEY_ID_BYTES);
	claim.payload_size = c->payload_size;
	err = fx_upload_begin(
	    svc->store, &claim, ub->contribution.data, ub->contribution.len,
	    ub->resume_id.len == FX_UPLOAD_ID_BYTES ? ub->resume_id.data : NULL,
	    sid, &offset, &d);
	if (err != FX_OK) {
		fx_log(cfg->log, FX_WARN, "upload refused: %s", d.msg);
		send_error(w, err, d.msg);
		goto out;
	}
	fx_log(cfg->log, FX_INFO, "upload %s: %s at %llu of %llu bytes",
	       fx_hex(hex, sid, sizeof(sid)), offset ? "resumed" : "begun",
	       (unsigned long long)offset,
	       (unsigned long long)claim.payload_size);
	br.session_id.data = sid;
	br.session_id.len = sizeof(sid);
	br.offset = offset;
	br.max_chunk = FX_WIRE_CHUNK_MAX;
	r.body_case = FLEXO__V1__RESPONSE__BODY_UPLOAD_BEGIN;
	r.upload_begin = &br;
	send_response(w, &r);
out:
	fx_wire_free(c ? &c->base : NULL);
	fx_wire_free(env ? &env->base : NULL);
}

/* Queues jb on lane l, first waiting for room if the lane is bounded. A
 * stopping lane drops the job. A worker's aio is idle until the lane
 * replies through it. */
static void lane_push(lane *l, job *jb)
{
	pthread_mutex_lock(&l->mu);
	while (l->max > 0 && l->len >= l->max && !l->stopping)
		pthread_cond_wait(&l->room, &l->mu);
	if (l->stopping) {
		pthread_mutex_unlock(&l->mu);
		l->drop(jb);
		return;
	}
	jb->next = NULL;
	if (l->tail)
		l->tail->next = jb;
	else
		l->head = jb;
	l->tail = jb;
	l->len++;
	pthread_cond_signal(&l->cv);
	pthread_mutex_unlock(&l->mu);
}

/* Parks w (state WAIT) on lane l. */
static void park(lane *l, worker *w)
{
	w->state = W_WAIT;
	lane_push(l, &w->link);
}

static void *lane_main(void *arg)
{
	lane *l = arg;

	for (;;) {
		job *jb;
		pthread_mutex_lock(&l->mu);
		while (l->head == NULL && !l->stopping)
			pthread_cond_wait(&l->cv, &l->mu);
		if (l->stopping) {
			pthread_mutex_unlock(&l->mu);
			return NULL;
		}
		jb = l->head;
		l->head = jb->next;
		if (l->head == NULL)
			l->tail = NULL;
		l->len--;
		pthread_cond_signal(&l->room);
		pthread_mutex_unlock(&l->mu);
		l->run(l->svc, jb);
	}
}

static fx_err lane_start(lane *l, fx_service *svc,
                         void (*run)(fx_service *, job *), void (*drop)(job *),
                         size_t max)
{
	l->svc = svc;
	l->run = run;
	l->drop = drop;
	l->max = max;
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cv, NULL);
	pthread_cond_init(&l->room, NULL);
	if (pthread_create(&l->thread, NULL, lane_main, l) != 0) {
		pthread_cond_destroy(&l->room);
		pthread_cond_destroy(&l->cv);
		pthread_mutex_destroy(&l->mu);
		return FX_ENOMEM;
	}
	l->started = 1;
	return FX_OK;
}

/* Stops the thread after its current job; queued jobs are dropped (parked
 * chunks: their contributors resend; parked admissions get no reply and
 * ask again; written chunks not yet hashed: the next start cuts the
 * session back to its last checkpoint). */
static void lane_stop(lane *l)
{
	if (!l->started)
		return;
	pthread_mutex_lock(&l->mu);
	l->stopping = 1;
	pthread_cond_broadcast(&l->cv);
	pthread_cond_broadcast(&l->room);
	pthread_mutex_unlock(&l->mu);
	pthread_join(l->thread, NULL);
	while (l->head != NULL) {
		job *jb = l->head;
		l->head = jb->next;
		l->drop(jb);
	}
	l->tail = NULL;
	l->len = 0;
	pthread_cond_destroy(&l->room);
	pthread_cond_destroy(&l->cv);
	pthread_mutex_destroy(&l->mu);
	l->started = 0;
}

static void drop_worker(job *jb)
{
	worker *w = (worker *)jb;
	fx_wire_free(w->req ? &w->req->base : NULL);
	w->req = NULL;
}

static void drop_hash(job *jb)
{
	hash_job *hj = (hash_job *)jb;
	fx_wire_free(&hj->req->base);
	free(hj);
}

typedef struct ack_arg {
	worker *w;
	const uint8_t *sid;
	int sent;
} ack_arg;

static void on_ack(void *arg, uint64_t acked)
{
	ack_arg *a = arg;
	a->sent = 1;
	send_ack(a->w, a->sid, acked);
}

/* Write lane: take the chunk, reply, write it, hand it to its session's
 * hash lane (waiting for room there: the digest sets the pace). The reply
 * goes out before the disk write, so the contributor's next chunk travels
 * (and is decoded) while this one is written. */
static void store_chunk(fx_service *svc, job *jb)
{
	worker *w = (worker *)jb;
	Flexo__V1__Request *req = w->req;
	const Flexo__V1__UploadChunk *ch = req->upload_chunk;
	uint8_t sid[FX_UPLOAD_ID_BYTES];
	ack_arg a = {w, sid, 0};
	uint64_t acked = 0;
	hash_job *hj = NULL;
	int wrote = 0;
	fx_diag d = {{0}};
	fx_err err;

	w->req = NULL; /* before any reply: w may be parked again after */
	memcpy(sid, ch->session_id.data, sizeof(sid));
	/* Allocated first: written bytes must reach the hash lane, in order. */
	if ((hj = malloc(sizeof(*hj))) == NULL) {
		send_error(w, FX_ENOMEM, "no memory for an upload chunk");
		fx_wire_free(&req->base);
		return;
	}
	err = fx_upload_write(svc->store, sid, ch->offset, ch->data.data,
	                      ch->data.len, on_ack, &a, &acked, &wrote, &d);
	if (a.sent) {
		/* Replied already; w may be serving its next request now. */
		if (err != FX_OK)
			fx_log(svc->cfg->log, FX_WARN, "upload chunk: %s",
			       d.msg);
	} else if (err != FX_OK) {
		send_error(w, err, d.msg);
	} else {
		send_ack(w, sid, acked);
	}
	if (!wrote) {
		free(hj);
		fx_wire_free(&req->base);
		return;
	}
	hj->req = req;
	lane_push(&svc->hashes[sid[0] % CHUNK_LANES], &hj->link);
}

/* Hash lane: digest (and checkpoint) one written chunk, in order. */
static void hash_chunk(fx_service *svc, job *jb)
{
	hash_job *hj = (hash_job *)jb;
	const Flexo__V1__UploadChunk *ch = hj->req->upload_chunk;
	fx_diag d = {{0}};

	if (fx_upload_hash(svc->store, ch->session_id.data, ch->offset,
	                   ch->data.data, ch->data.len, &d) != FX_OK)
		fx_log(svc->cfg->log, FX_WARN, "upload chunk: %s", d.msg);
	fx_wire_free(&hj->req->base);
	free(hj);
}

static void handle_end(worker *w, const Flexo__V1__UploadEnd *ue)
{
	fx_service *svc = w->svc;
	uint8_t *v = NULL;
	size_t n = 0;

	if (fx_upload_get_verdict(svc->store, ue->session_id.data, &v, &n) ==
	    FX_OK) {
		/* Asked again (the first reply was lost): same answer. */
		send_verdict_bytes(w, v, n);
		free(v);
		return;
	}
	memcpy(w->session, ue->session_id.data, FX_UPLOAD_ID_BYTES);
	park(&svc->admit, w);
}

/* A plain file name inside the release directory: no path, no hidden
 * files, printable. */
static int file_name_ok(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > 255 || name[0] == '.')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (name[i] == '/' || (unsigned char)name[i] < 0x20 ||
		    name[i] == 0x7f)
			return 0;
	return 1;
}

static void handle_file(worker *w, const Flexo__V1__FileRequest *fr)
{
	const fx_service_config *cfg = w->svc->cfg;
	Flexo__V1__Response r = FLEXO__V1__RESPONSE__INIT;
	Flexo__V1__FileChunk fc = FLEXO__V1__FILE_CHUNK__INIT;
	char path[FX_PATH_MAX + 1];
	uint8_t *buf = NULL;
	struct stat st;
	size_t want, got = 0;
	int fd = -1;

	if (cfg->release_dir == NULL) {
		send_error(w, FX_ENOTFOUND,
		           "this coordinator serves no release");
		return;
	}
	if (!file_name_ok(fr->name)) {
		send_error(w, FX_EINVAL,
		           "file name must be a plain name in the release "
		           "directory");
		return;
	}
	if (snprintf(path, sizeof(path), "%s/%s", cfg->release_dir, fr->name) >=
	        (int)sizeof(path) ||
	    (fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0 ||
	    fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		char msg[FX_VERDICT_REASON_MAX];
		snprintf(msg, sizeof(msg), "release has no file '%s'",
		         fr->name);
		send_error(w, FX_ENOTFOUND, msg);
		goto out;
	}
	if (fr->offset > (uint64_t)st.st_size) {
		send_error(w, FX_EINVAL, "offset past the end of the file");
		goto out;
	}
	want = fr->max == 0 || fr->max > FX_WIRE_CHUNK_MAX ? FX_WIRE_CHUNK_MAX
	                                                   : fr->max;
	if ((uint64_t)st.st_size - fr->offset < want)
		want = (size_t)((uint64_t)st.st_size - fr->offset);
	if ((buf = malloc(want ? want : 1)) == NULL) {
		send_error(w, FX_ENOMEM, "file chunk");
		goto out;
	}
	while (got < want) {
		ssize_t k =
		    pread(fd, buf + got, want - got, (off_t)(fr->offset + got));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	fc.name = fr->name;
	fc.offset = fr->offset;
	fc.size = (uint64_t)st.st_size;
	fc.data.data = buf;
	fc.data.len = got;
	r.body_case = FLEXO__V1__RESPONSE__BODY_FILE;
	r.file = &fc;
	send_response(w, &r);
out:
	free(buf);
	if (fd >= 0)
		close(fd);
}

static void handle_other(worker *w, const Flexo__V1__Request *req)
{
	const fx_service_config *cfg = w->svc->cfg;
	uint8_t *buf = NULL;
	size_t len = 0;
	nng_msg *msg = NULL;
	fx_diag d = {{0}};
	fx_err err;

	if (cfg->other == NULL) {
		send_error(w, FX_ESTATE,
		           "request not served by this coordinator");
		return;
	}
	err = cfg->other(cfg->ctx, req, &buf, &len, &d);
	if (err != FX_OK) {
		send_error(w, err, d.msg);
		return;
	}
	if (len > FX_WIRE_MSG_MAX || nng_msg_alloc(&msg, len) != 0) {
		free(buf);
		send_error(w, FX_ETOOBIG, "reply too large");
		return;
	}
	memcpy(nng_msg_body(msg), buf, len);
	free(buf);
	nng_aio_set_msg(w->aio, msg);
	nng_aio_set_timeout(w->aio, cfg->timeout_ms);
	w->state = W_SEND;
	nng_ctx_send(w->ctx, w->aio);
}

/* One request: decode (bounded), dispatch. Exactly one reply is sent, or
 * the worker is parked for admission. */
static void handle(worker *w, nng_msg *msg)
{
	Flexo__V1__Request *req = NULL;
	fx_diag d = {{0}};
	fx_err err;

	err = fx_net_unpack(msg, &flexo__v1__request__descriptor,
	                    FX_WIRE_MSG_MAX, (ProtobufCMessage **)&req, &d);
	nng_msg_free(msg);
	if (err != FX_OK) {
		fx_diag_prefix(&d, "request");
		send_error(w, err, d.msg);
		return;
	}
	if (req->protocol != FX_WIRE_PROTOCOL) {
		send_error(w, FX_EPROTO, "unsupported protocol version");
		goto out;
	}
	switch (req->body_case) {
	case FLEXO__V1__REQUEST__BODY_UPLOAD_BEGIN:
		handle_begin(w, req->upload_begin);
		break;
	case FLEXO__V1__REQUEST__BODY_UPLOAD_CHUNK:
		/* The lane owns the request from here. */
		w->req = req;
		park(&w->svc->writes[req->upload_chunk->session_id.data[0] %
		                     CHUNK_LANES],
		     w);
		return;
	case FLEXO__V1__REQUEST__BODY_UPLOAD_END:
		handle_end(w, req->upload_end);
		break;
	case FLEXO__V1__REQUEST__BODY_FILE:
		handle_file(w, req->file);
		break;
	case FLEXO__V1__REQUEST__BODY__NOT_SET:
		send_error(w, FX_EPROTO, "empty request");
		break;
	default:
		handle_other(w, req);
		break;
	}
out:
	fx_wire_free(&req->base);
}

static void worker_cb(void *arg)
{
	worker *w = arg;
	int rv = nng_aio_result(w->aio);

	switch (w->state) {
	case W_RECV:
		if (rv != 0) {
			if (rv != NNG_ECLOSED)
				recv_next(w);
			return;
		}
		handle(w, nng_aio_get_msg(w->aio));
		return;
	case W_SEND:
		if (rv != 0) {
			/* Peer gone or timed out: the reply is dropped; the
			 * client's retry gets the same answer. */
			nng_msg_free(nng_aio_get_msg(w->aio));
			if (rv == NNG_ECLOSED)
				return;
		}
		recv_next(w);
		return;
	default:
		return;
	}
}

/* Runs fx_upload_finish + admission + stored verdict for one parked
 * worker, then replies through it. */
static void admit_one(fx_service *svc, job *jb)
{
	worker *w = (worker *)jb;
	const fx_service_config *cfg = svc->cfg;
	fx_upload_done done;
	fx_verdict v;
	fx_admit_input in;
	Flexo__V1__Verdict vm;
	Flexo__V1__Response r = FLEXO__V1__RESPONSE__INIT;
	uint8_t digest[FX_BLAKE2B_BYTES], *enc = NULL;
	char hex[2 * FX_UPLOAD_ID_BYTES + 1];
	size_t enc_len = 0;
	fx_diag d = {{0}};
	fx_err err;

	memset(&done, 0, sizeof(done));
	memset(&v, 0, sizeof(v));
	fx_hex(hex, w->session, FX_UPLOAD_ID_BYTES);
	if ((err = fx_upload_finish(svc->store, w->session, &done, &d)) !=
	    FX_OK) {
		send_error(w, err, d.msg);
		return;
	}
	in.envelope = done.envelope;
	in.envelope_len = done.envelope_len;
	in.staged_path = done.path;
	in.digest = done.digest;
	in.size = done.size;
	err = cfg->admit(cfg->ctx, &in, &v, &d);
	if (err != FX_OK) {
		fx_log(cfg->log, FX_ERROR, "upload %s: admission failed: %s",
		       hex, d.msg);
		fx_upload_unfinish(svc->store, w->session);
		send_error(w, err, d.msg);
		goto out;
	}
	verdict_msg(&vm, &v, digest, done.envelope, done.envelope_len);
	if ((err = fx_wire_encode(&vm.base, &enc, &enc_len, &d)) != FX_OK ||
	    (err = fx_upload_set_verdict(svc->store, w->session, enc, enc_len,
	                                 &d)) != FX_OK) {
		fx_log(cfg->log, FX_ERROR, "upload %s: storing verdict: %s",
		       hex, d.msg);
		fx_upload_unfinish(svc->store, w->session);
		send_error(w, err, d.msg);
		goto out;
	}
	(void)unlink(done.path);
	fx_log(cfg->log, FX_INFO, "upload %s: %s (%s%s%s)", hex,
	       decision_name(v.decision), v.gate, v.reason[0] ? ": " : "",
	       v.reason);
	r.body_case = FLEXO__V1__RESPONSE__BODY_VERDICT;
	r.verdict = &vm;
	send_response(w, &r);
out:
	free(enc);
	verdict_release(&v);
	fx_upload_done_release(&done);
}

fx_err fx_service_start(fx_service **out, const fx_service_config *cfg,
                        fx_diag *diag)
{
	fx_service *s = NULL;
	fx_err err = FX_OK;
	int rv;

	if (cfg->admit == NULL || cfg->n_urls == 0 ||
	    cfg->n_urls > FX_SERVICE_MAX_URLS || cfg->contexts < 1 ||
	    cfg->contexts > FX_SERVICE_MAX_CONTEXTS || cfg->timeout_ms <= 0)
		return fx_diag_set(diag, FX_EINVAL,
		                   "service needs an admission function, 1..%d "
		                   "URLs, 1..%d contexts and a timeout > 0",
		                   FX_SERVICE_MAX_URLS,
		                   FX_SERVICE_MAX_CONTEXTS);
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return fx_diag_set(diag, FX_ENOMEM, "service");
	s->cfg = cfg;
	if ((err = fx_upload_store_open(&s->store, cfg->staging_dir,
	                                &cfg->limits, diag)) != FX_OK)
		goto fail;
	if ((rv = nng_rep0_open(&s->sock)) != 0) {
		err = fx_net_error(rv, diag, "socket");
		goto fail;
	}
	s->sock_open = 1;
	if ((s->workers = calloc((size_t)cfg->contexts, sizeof(worker))) ==
	    NULL) {
		err = fx_diag_set(diag, FX_ENOMEM, "service contexts");
		goto fail;
	}
	for (int i = 0; i < cfg->contexts; i++) {
		worker *w = &s->workers[i];
		w->svc = s;
		if ((rv = nng_aio_alloc(&w->aio, worker_cb, w)) != 0 ||
		    (rv = nng_ctx_open(&w->ctx, s->sock)) != 0) {
			if (w->aio != NULL)
				nng_aio_free(w->aio);
			w->aio = NULL;
			err = fx_net_error(rv, diag, "context");
			goto fail;
		}
		s->n_workers++;
	}
	if (lane_start(&s->admit, s, admit_one, drop_worker, 0) != FX_OK) {
		err = fx_diag_set(diag, FX_ENOMEM, "admission thread");
		goto fail;
	}
	for (int i = 0; i < CHUNK_LANES; i++)
		if (lane_start(&s->hashes[i], s, hash_chunk, drop_hash,
		               HASH_QUEUE_MAX) != FX_OK ||
		    lane_start(&s->writes[i], s, store_chunk, drop_worker, 0) !=
		        FX_OK) {
			err = fx_diag_set(diag, FX_ENOMEM, "chunk thread");
			goto fail;
		}
	for (size_t i = 0; i < cfg->n_urls; i++)
		if ((err = fx_net_listen(s->sock, cfg->urls[i], &cfg->tls,
		                         FX_WIRE_MSG_MAX, diag)) != FX_OK)
			goto fail;
	for (int i = 0; i < s->n_workers; i++)
		recv_next(&s->workers[i]);
	*out = s;
	return FX_OK;
fail:
	fx_service_stop(s);
	return err;
}

void fx_service_stop(fx_service *s)
{
	if (s == NULL)
		return;
	/* The lanes reply through contexts: they must be gone before the
	 * socket (and with it every context) is closed. Admission and the
	 * write lanes may be waiting on the hash lanes (a finish for the last
	 * chunks' digest, a push for room), so those stop last. */
	lane_stop(&s->admit);
	for (int i = 0; i < CHUNK_LANES; i++)
		lane_stop(&s->writes[i]);
	for (int i = 0; i < CHUNK_LANES; i++)
		lane_stop(&s->hashes[i]);
	if (s->sock_open)
		nng_close(s->sock);
	for (int i = 0; i < s->n_workers; i++) {
		nng_aio_stop(s->workers[i].aio);
		nng_ctx_close(s->workers[i].ctx);
		nng_aio_free(s->workers[i].aio);
	}
	free(s->workers);
	fx_upload_store_close(s->store);
	free(s);
}
