/*
 * pageclient_test.c - The page client's pure logic, with no server: the shard
 * hash against the page server's own (engine/key.c ar_shard_of_key), tickets, the
 * window of a shard connection (pageclient.c invariants 1-3), answers matched in
 * order and checked (invariant 4), ownership of slots between the caller, the
 * prefetch ring and nobody (invariant 5), and Neon's prefetch reuse rule.
 *
 * It includes pageclient.c to reach its static bookkeeping (the way SQLite's test
 * files reach internals).  Answers are fed in as libpq would hand them over: a
 * malloc'd buffer (libpq's PQfreemem is free) holding a CopyData payload built by
 * common/pagestream.c's encoder.  The connection stays NULL throughout: nothing here
 * touches a socket.
 */
#include "compute/pageclient.c"

#include "engine/key.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#define RANDOM_CASES 100000
#define LSN_A 0x0000000100001000ull
#define LSN_B 0x0000000100002000ull
#define LSN_C 0x0000000100003000ull

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

/* splitmix64: the cases are the same on every run. */
static uint64_t next_random(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static struct ps_rel rel_of(uint32_t relnode, uint8_t fork)
{
	return (struct ps_rel){ .spc = 1663, .db = 5, .relnode = relnode, .fork = fork };
}

static uint32_t engine_shard(uint32_t count, uint32_t stripe, struct ps_rel rel, uint32_t blkno)
{
	struct ar_shard_map map = { .shard_count = count, .stripe_blocks = stripe };
	struct ar_rel r = {
		.spc_oid = rel.spc, .db_oid = rel.db, .rel_number = rel.relnode, .fork = rel.fork
	};
	struct ar_key key = ar_key_rel_block(r, blkno);
	return ar_shard_of_key(&map, &key);
}

/* ---- routing ---- */

static void test_shard_hash_matches_engine(void **state)
{
	(void)state;
	uint32_t seen[8] = { 0 };
	for (uint32_t i = 0; i < RANDOM_CASES; i++) {
		uint64_t r = next_random();
		uint32_t count = 2 + (uint32_t)(r % 7);
		uint8_t fork = (uint8_t)(r >> 8) % 4;
		/* Small relnodes and blocks often, so stripes and relations repeat. */
		uint32_t relnode =
		    (r >> 16) & 1 ? (uint32_t)next_random() : (uint32_t)(r >> 20) % 64;
		uint32_t blkno =
		    (r >> 17) & 1 ? (uint32_t)next_random() : (uint32_t)(r >> 32) % 20000;
		uint32_t stripe = (r >> 18) & 1 ? 0 : 1 + (uint32_t)(r >> 40) % 4096;
		struct ps_rel rel = rel_of(relnode, fork);
		uint32_t want = engine_shard(count, stripe, rel, blkno);
		uint32_t got = apc_shard_of_block(count, stripe, rel, blkno);
		if (got != want)
			fail_msg(
			    "relnode %u blkno %u fork %u count %u stripe %u: %u, engine says %u",
			    relnode, blkno, fork, count, stripe, got, want);
		assert_true(got < count);
		seen[got]++;
	}
	for (uint32_t s = 0; s < 8; s++)
		assert_true(seen[s] > 0); /* every shard of 8 got blocks */
}

static void test_shard_hash_edges(void **state)
{
	(void)state;
	struct ps_rel heap = rel_of(16384, 0), init = rel_of(16384, 3), none = rel_of(0, 0);
	for (uint32_t count = 0; count < 2; count++)
		for (uint32_t b = 0; b < 10000; b += 97)
			assert_int_equal(apc_shard_of_block(count, 0, heap, b), 0);
	uint32_t off_zero = 0;
	for (uint32_t b = 0; b < 64 * 2048; b += 2048) {
		assert_int_equal(apc_shard_of_block(4, 0, init, b), 0);
		assert_int_equal(apc_shard_of_block(4, 0, none, b), 0);
		off_zero += apc_shard_of_block(4, 0, heap, b) != 0;
		/* A stripe's blocks stay together; stripe 0 is the default 2048. */
		assert_int_equal(apc_shard_of_block(4, 0, heap, b),
				 apc_shard_of_block(4, 0, heap, b + 2047));
		assert_int_equal(apc_shard_of_block(4, 0, heap, b),
				 apc_shard_of_block(4, 2048, heap, b));
	}
	assert_true(off_zero > 0);
	assert_int_equal(apc_shard_of_block(4, 0, heap, UINT32_MAX), 0); /* the size key */
	assert_int_equal(engine_shard(4, 0, heap, UINT32_MAX), 0);
	assert_int_equal(engine_shard(4, 0, none, 5), 0);
}

static void test_tickets(void **state)
{
	(void)state;
	for (uint32_t shard = 0; shard < APC_SHARDS_MAX; shard += 31) {
		for (uint64_t seq = 0; seq < (UINT64_C(1) << 50); seq = seq * 3 + 1) {
			int64_t t = ticket_make(seq, shard);
			assert_true(t >= 0);
			assert_int_equal(ticket_shard(t), shard);
			assert_int_equal(ticket_seq(t), seq);
		}
	}
}

/* ---- the window ---- */

static void test_window_fill_and_drain_in_order(void **state)
{
	(void)state;
	struct slot slots[4];
	struct window w;
	window_init(&w, slots, 4);
	for (uint32_t round = 0; round < 5; round++) {
		for (uint32_t i = 0; i < 4; i++) {
			assert_false(window_full(&w));
			struct slot *sl = window_take(&w);
			assert_int_equal(sl->seq, round * 4 + i);
			assert_ptr_equal(window_find(&w, sl->seq), sl);
		}
		assert_true(window_full(&w));
		assert_int_equal(window_in_flight(&w), 4);
		for (uint32_t i = 0; i < 4; i++) {
			struct slot *sl = window_answer(&w);
			assert_int_equal(sl->seq, round * 4 + i);
			assert_int_equal(sl->state, SLOT_ANSWERED);
		}
		assert_null(window_answer(&w)); /* nothing in flight */
		assert_true(window_full(&w));   /* answered, not consumed: still held */
		for (uint32_t i = 0; i < 4; i++)
			window_release(&w, window_find(&w, round * 4 + i));
		assert_int_equal(w.head, w.tail);
		assert_null(window_find(&w, round * 4)); /* consumed */
		window_check(&w);
	}
}

static void test_window_out_of_order_consumption(void **state)
{
	(void)state;
	struct slot slots[4];
	struct window w;
	window_init(&w, slots, 4);
	for (uint32_t i = 0; i < 4; i++)
		window_take(&w);
	for (uint32_t i = 0; i < 3; i++)
		window_answer(&w);
	/* Seqs 1 and 2 consumed first: the head stays at 0, the window stays full. */
	window_release(&w, window_find(&w, 2));
	window_release(&w, window_find(&w, 1));
	assert_int_equal(w.head, 0);
	assert_true(window_full(&w));
	assert_null(window_find(&w, 1));
	/* Seq 0 consumed: the head skips 1 and 2 and stops at the in-flight 3. */
	window_release(&w, window_find(&w, 0));
	assert_int_equal(w.head, 3);
	assert_int_equal(w.recv, 3);
	assert_int_equal(window_in_flight(&w), 1);
	/* Three slots free again; seq 4..6 reuse slots 0..2. */
	for (uint32_t i = 0; i < 3; i++)
		assert_ptr_equal(window_take(&w), &slots[(4 + i) % 4]);
	assert_true(window_full(&w));
	assert_null(window_find(&w, 7)); /* not issued */
	window_check(&w);
}

static void test_window_keeps_a_slot_for_reads(void **state)
{
	(void)state;
	struct slot slots[4];
	struct window w;
	window_init(&w, slots, 4);
	for (uint32_t i = 0; i < 3; i++) {
		assert_true(window_prefetch_room(&w));
		window_take(&w);
	}
	assert_false(window_prefetch_room(&w)); /* the last slot is a read's */
	assert_false(window_full(&w));
	window_take(&w);
	assert_true(window_full(&w));
	struct slot one[1];
	window_init(&w, one, 1);
	assert_false(window_prefetch_room(&w)); /* a window of 1 never prefetches */
}

static void test_window_drop_fails_in_flight_only(void **state)
{
	(void)state;
	struct slot slots[8];
	struct window w;
	window_init(&w, slots, 8);
	for (uint32_t i = 0; i < 6; i++)
		window_take(&w);
	window_answer(&w);
	window_answer(&w);
	assert_int_equal(window_fail_in_flight(&w, -ECONNRESET, "shard 0: connection lost"), 4);
	assert_int_equal(w.recv, w.tail); /* invariant 3 */
	assert_int_equal(window_find(&w, 0)->state, SLOT_ANSWERED);
	for (uint64_t s = 2; s < 6; s++) {
		struct slot *sl = window_find(&w, s);
		assert_int_equal(sl->state, SLOT_FAILED);
		assert_int_equal(sl->result, -ECONNRESET);
		assert_string_equal(sl->error, "shard 0: connection lost");
	}
	for (uint64_t s = 0; s < 6; s++)
		window_release(&w, window_find(&w, s));
	assert_int_equal(w.head, 6);
	assert_int_equal(window_fail_in_flight(&w, -ETIMEDOUT, "x"), 0);
}

/* ---- the client's bookkeeping, on a client with no connection ---- */

static const char *const fake_conninfo[] = { "host=none", "host=none", "host=none", "host=none" };

static struct apc_client *fake_client(uint32_t window, uint32_t shard_count, int version)
{
	uint32_t n = shard_count ? shard_count : 1;
	struct apc_config c = { .conninfo = fake_conninfo,
				.shard_count = shard_count,
				.tenant = "0123456789abcdef0123456789abcdef",
				.timeline = "00000000000000000000000000000001",
				.version = version,
				.window = window };
	assert_int_equal(config_check(&c, NULL), 0);
	struct apc_client *cl = calloc(1, sizeof(*cl) + n * sizeof(struct shard));
	assert_non_null(cl);
	cl->shard_count = shard_count;
	cl->connections = n;
	cl->stripe_pages = APC_STRIPE_PAGES_DEFAULT;
	cl->version = version == 2 ? PS_V2 : PS_V3;
	cl->window = window;
	cl->timeout_ms = APC_TIMEOUT_MS_DEFAULT;
	cl->reqid_base = UINT64_C(77) << 32;
	cl->slots = calloc((size_t)n * window, sizeof(struct slot));
	assert_non_null(cl->slots);
	for (uint32_t i = 0; i < n; i++)
		shard_init(cl, &c, i);
	return cl;
}

/* send_on's bookkeeping without libpq: the slot and its ticket. */
static int64_t fake_send(struct apc_client *cl, const struct ps_request *req)
{
	struct shard *s = &cl->shard[route(cl, req)];
	if (window_full(&s->win))
		return -EAGAIN;
	struct slot *sl = window_take(&s->win);
	sl->req = *req;
	sl->req.reqid = cl->version == PS_V3 ? cl->reqid_base | ++cl->reqid_counter : 0;
	sl->deadline_ns = now_ns() + 1000000000u;
	cl->stats.sent++;
	return ticket_make(sl->seq, s->index);
}

static struct ps_request getpage(uint32_t blkno, uint64_t lsn, uint64_t nms)
{
	return (struct ps_request){ .tag = PS_GETPAGE,
				    .request_lsn = lsn,
				    .not_modified_since = nms,
				    .rel = rel_of(16384, 0),
				    .blkno = blkno };
}

/* The server's answer to the oldest in-flight request of shard s, as libpq hands
 * it over; fill is the page's byte (or an Error when error is set); flip: a byte
 * of the v3 echo is wrong. */
static int deliver_bytes(struct apc_client *cl, uint32_t s, uint8_t fill, const char *error,
			 bool flip)
{
	struct shard *sh = &cl->shard[s];
	assert_true(window_in_flight(&sh->win) > 0);
	const struct ps_request *req = &window_slot(&sh->win, sh->win.recv)->req;
	static uint8_t page[PS_PAGE_BYTES];
	memset(page, fill, sizeof(page));
	struct ps_response resp = { .tag = error ? PS_R_ERROR : ps_response_tag(req->tag),
				    .page = page,
				    .nblocks = fill,
				    .error = error };
	size_t n = ps_response_size(cl->version, req, &resp);
	char *buf = malloc(n);
	assert_non_null(buf);
	assert_int_equal(ps_response_encode(cl->version, req, &resp, (uint8_t *)buf), n);
	if (flip)
		buf[8] ^= 1; /* the reqid's low byte */
	return shard_deliver(cl, sh, buf, (int)n);
}

static int deliver(struct apc_client *cl, uint32_t s, uint8_t fill, const char *error)
{
	return deliver_bytes(cl, s, fill, error, false);
}

static void test_answers_in_order_and_ownership(void **state)
{
	(void)state;
	struct apc_client *cl = fake_client(4, 0, 3);
	int64_t t[4];
	for (uint32_t i = 0; i < 4; i++) {
		struct ps_request req = getpage(i, LSN_A, 0);
		t[i] = fake_send(cl, &req);
		assert_true(t[i] >= 0);
	}
	struct ps_request more = getpage(9, LSN_A, 0);
	assert_int_equal(fake_send(cl, &more), -EAGAIN);
	assert_false(apc_ready(cl, t[0]));
	assert_int_equal(deliver(cl, 0, 0x10, NULL), 0);
	assert_int_equal(deliver(cl, 0, 0x11, "could not read block 1"), 0);
	assert_true(apc_ready(cl, t[0]));
	assert_true(apc_ready(cl, t[1]));
	assert_false(apc_ready(cl, t[2]));
	/* An Error answer fails only its request, with the server's text. */
	char err[APC_ERROR_BYTES];
	struct apc_result res;
	assert_int_equal(apc_wait(cl, t[1], &res, err), -EREMOTEIO);
	assert_non_null(strstr(err, "could not read block 1"));
	assert_non_null(strstr(err, "shard 0"));
	assert_int_equal(apc_wait(cl, t[0], &res, err), 0);
	assert_int_equal(res.resp.tag, PS_R_GETPAGE);
	assert_int_equal(res.resp.page[100], 0x10);
	assert_ptr_equal(cl->held, (const char *)res.resp.page - 1 - 24 - 17); /* invariant 7 */
	/* A consumed ticket is gone; a discarded one is freed when answered. */
	assert_int_equal(apc_wait(cl, t[0], &res, err), -ENOENT);
	apc_discard(cl, t[2]);
	assert_int_equal(apc_wait(cl, t[2], &res, err), -ENOENT);
	assert_int_equal(deliver(cl, 0, 0x12, NULL), 0);
	assert_int_equal(cl->shard[0].win.head, 3);
	assert_int_equal(cl->stats.received, 3);
	assert_int_equal(cl->stats.errors, 1);
	apc_close(cl);
}

static void test_bad_answers_drop_the_connection(void **state)
{
	(void)state;
	struct apc_client *cl = fake_client(8, 0, 3);
	int64_t t[3];
	for (uint32_t i = 0; i < 3; i++) {
		struct ps_request req = getpage(i, LSN_A, 0);
		t[i] = fake_send(cl, &req);
	}
	assert_int_equal(deliver(cl, 0, 1, NULL), 0);
	/* An answer whose v3 echo names another request: the stream is out of step. */
	assert_int_equal(deliver_bytes(cl, 0, 2, NULL, true), -AR_EPROTO);
	char err[APC_ERROR_BYTES];
	struct apc_result res;
	assert_int_equal(apc_wait(cl, t[2], &res, err), -AR_EPROTO);
	assert_non_null(strstr(err, "shard 0"));
	assert_non_null(strstr(err, "does not echo"));
	assert_int_equal(apc_wait(cl, t[1], &res, err), -AR_EPROTO);
	assert_int_equal(apc_wait(cl, t[0], &res, err), 0); /* answered before: kept */
	/* An answer with nothing in flight. */
	char *extra = malloc(8);
	assert_non_null(extra);
	memset(extra, 0, 8);
	assert_int_equal(shard_deliver(cl, &cl->shard[0], extra, 8), -AR_EPROTO);
	assert_non_null(strstr(apc_last_error(cl), "no request in flight"));
	apc_close(cl);
}

static void test_prefetch_taken_and_evicted(void **state)
{
	(void)state;
	struct apc_client *cl = fake_client(4, 0, 2);
	struct ps_rel rel = rel_of(16384, 0);
	/* apc_prefetch's bookkeeping for blocks 0..3 at (LSN_B, LSN_A). */
	for (uint32_t b = 0; b < 4; b++) {
		struct ps_request req = getpage(b, LSN_B, LSN_A);
		int64_t t = fake_send(cl, &req);
		uint32_t index = pf_slot_of(rel, b);
		assert_false(cl->prefetch[index].used); /* consecutive blocks never collide */
		window_find(&cl->shard[0].win, ticket_seq(t))->prefetch = (int16_t)index;
		cl->prefetch[index] = (struct pf_entry){ .used = true,
							 .rel = rel,
							 .blkno = b,
							 .request_lsn = LSN_B,
							 .not_modified_since = LSN_A,
							 .ticket = t };
	}
	for (uint8_t b = 0; b < 4; b++)
		assert_int_equal(deliver(cl, 0, (uint8_t)(0x40 + b), NULL), 0);
	/* A later read at a newer LSN whose page did not change since: a hit. */
	struct apc_result res;
	char err[APC_ERROR_BYTES];
	assert_int_equal(pf_take(cl, rel, 0, LSN_C, LSN_B, &res, err), 0);
	assert_int_equal(res.resp.page[0], 0x40);
	assert_int_equal(cl->stats.prefetch_hits, 1);
	/* Changed after the prefetch's LSN: refused and thrown away. */
	assert_int_equal(pf_take(cl, rel, 1, LSN_C, LSN_C, &res, err), -ENOENT);
	assert_int_equal(cl->stats.prefetch_discarded, 1);
	assert_false(cl->prefetch[pf_slot_of(rel, 1)].used);
	/* A read of a block never prefetched leaves the others alone. */
	assert_int_equal(pf_take(cl, rel, 100, LSN_B, LSN_A, &res, err), -ENOENT);
	assert_true(cl->prefetch[pf_slot_of(rel, 2)].used);
	/* A synchronous request on a full window gives up the oldest prefetched answers. */
	struct ps_request a = getpage(7, LSN_B, 0), b = getpage(8, LSN_B, 0);
	int64_t ta = fake_send(cl, &a), tb = fake_send(cl, &b);
	assert_true(ta >= 0 && tb >= 0);
	assert_true(window_full(&cl->shard[0].win));
	assert_int_equal(make_room(cl, &cl->shard[0]), 0);
	assert_false(cl->prefetch[pf_slot_of(rel, 2)].used);
	assert_true(cl->prefetch[pf_slot_of(rel, 3)].used);
	/* The caller's own tickets are not given up. */
	int64_t tc = fake_send(cl, &a);
	assert_true(tc >= 0);
	pf_evict(cl, pf_slot_of(rel, 3));
	int64_t td = fake_send(cl, &a);
	assert_true(td >= 0);
	assert_int_equal(make_room(cl, &cl->shard[0]), -EAGAIN);
	assert_int_equal(cl->stats.prefetch_discarded, 3);
	apc_close(cl);
}

static void test_prefetch_failed_with_its_connection(void **state)
{
	(void)state;
	struct apc_client *cl = fake_client(4, 0, 3);
	struct ps_rel rel = rel_of(16384, 0);
	struct ps_request req = getpage(5, LSN_B, LSN_A);
	int64_t t = fake_send(cl, &req);
	uint32_t index = pf_slot_of(rel, 5);
	window_find(&cl->shard[0].win, ticket_seq(t))->prefetch = (int16_t)index;
	cl->prefetch[index] = (struct pf_entry){ .used = true,
						 .rel = rel,
						 .blkno = 5,
						 .request_lsn = LSN_B,
						 .not_modified_since = LSN_A,
						 .ticket = t };
	shard_drop(cl, &cl->shard[0], -ECONNRESET, "connection lost: %s", "gone");
	assert_true(cl->prefetch[index].used); /* the ring still owns the failed slot */
	struct apc_result res;
	char err[APC_ERROR_BYTES];
	/* Not the server's word on the page: the read goes out afresh. */
	assert_int_equal(pf_take(cl, rel, 5, LSN_B, LSN_A, &res, err), -ENOENT);
	assert_false(cl->prefetch[index].used);
	assert_int_equal(cl->shard[0].win.head, cl->shard[0].win.tail);
	assert_int_equal(cl->stats.prefetch_discarded, 1);
	apc_close(cl);
}

static void test_routing_to_shards(void **state)
{
	(void)state;
	struct apc_client *cl = fake_client(2, 4, 3);
	assert_string_equal(cl->shard[0].command,
			    "pagestream_v3 0123456789abcdef0123456789abcdef-0004 "
			    "00000000000000000000000000000001");
	assert_non_null(strstr(cl->shard[3].command, "-0304 "));
	uint32_t per[4] = { 0 };
	for (uint32_t b = 0; b < 64 * 2048; b += 2048) {
		struct ps_request req = getpage(b, LSN_A, 0);
		uint32_t s = route(cl, &req);
		assert_int_equal(s, engine_shard(4, 0, req.rel, b));
		per[s]++;
	}
	for (uint32_t s = 0; s < 4; s++)
		assert_true(per[s] > 0);
	struct ps_request nb = { .tag = PS_NBLOCKS, .rel = rel_of(16384, 0) };
	struct ps_request slru = { .tag = PS_GETSLRU, .slru_kind = 1 };
	assert_int_equal(route(cl, &nb), 0);
	assert_int_equal(route(cl, &slru), 0);
	/* Windows are per shard. */
	struct ps_request r = getpage(0, LSN_A, 0);
	uint32_t s0 = route(cl, &r);
	assert_true(fake_send(cl, &r) >= 0);
	assert_true(fake_send(cl, &r) >= 0);
	assert_int_equal(fake_send(cl, &r), -EAGAIN);
	for (uint32_t b = 2048; b < 64 * 2048; b += 2048) {
		struct ps_request o = getpage(b, LSN_A, 0);
		if (route(cl, &o) != s0) {
			assert_true(fake_send(cl, &o) >= 0);
			break;
		}
	}
	struct apc_client *one = fake_client(2, 1, 2);
	assert_string_equal(one->shard[0].command, "pagestream_v2 0123456789abcdef0123456789abcdef "
						   "00000000000000000000000000000001");
	apc_close(one);
	apc_close(cl);
}

/* ---- the reuse rule ---- */

static void test_prefetch_usable(void **state)
{
	(void)state;
	const uint64_t max = UINT64_MAX;
	/* The same request. */
	assert_true(apc_prefetch_usable(max, LSN_A, max, LSN_A));
	assert_true(apc_prefetch_usable(LSN_B, LSN_A, LSN_B, LSN_A));
	/* A primary's prefetch (request_lsn max): its effective LSN is unknown here,
	 * so only the same request takes it. */
	assert_false(apc_prefetch_usable(max, LSN_A, max, LSN_B));
	/* A replica's: usable while the page did not change after the old LSN. */
	assert_true(apc_prefetch_usable(LSN_B, LSN_A, LSN_C, LSN_B));
	assert_true(apc_prefetch_usable(LSN_B, LSN_A, LSN_C, LSN_A));
	assert_false(apc_prefetch_usable(LSN_B, LSN_A, LSN_C, LSN_C));
	/* A primary's read after a replica-style prefetch. */
	assert_true(apc_prefetch_usable(LSN_B, LSN_A, max, LSN_B));
	assert_false(apc_prefetch_usable(LSN_B, LSN_A, max, LSN_C));
	/* LSNs going backwards: never (the page may be newer than asked for). */
	assert_false(apc_prefetch_usable(LSN_C, LSN_A, LSN_B, LSN_A));
	assert_false(apc_prefetch_usable(LSN_C, LSN_B, LSN_C, LSN_A));
	assert_false(apc_prefetch_usable(max, LSN_A, LSN_C, LSN_A));
}

static void test_prefetch_ring_slots(void **state)
{
	(void)state;
	struct ps_rel a = rel_of(16384, 0), b = rel_of(16384, 1);
	bool taken[APC_PREFETCH_SLOTS] = { false };
	for (uint32_t blk = 1000; blk < 1000 + APC_PREFETCH_SLOTS; blk++) {
		uint32_t s = pf_slot_of(a, blk);
		assert_true(s < APC_PREFETCH_SLOTS);
		assert_false(taken[s]);
		taken[s] = true;
		assert_int_equal(pf_slot_of(a, blk), s);
	}
	assert_int_equal(pf_slot_of(a, 7), pf_slot_of(a, 7 + APC_PREFETCH_SLOTS));
	struct pf_entry e = { .used = true,
			      .rel = a,
			      .blkno = 7,
			      .request_lsn = LSN_B,
			      .not_modified_since = LSN_A };
	assert_int_equal(pf_decide(&e, a, 7, LSN_B, LSN_A), PF_TAKE);
	assert_int_equal(pf_decide(&e, a, 7, LSN_C, LSN_C), PF_EVICT);
	assert_int_equal(pf_decide(&e, b, 7, LSN_B, LSN_A), PF_NONE);
	assert_int_equal(pf_decide(&e, a, 8, LSN_B, LSN_A), PF_NONE);
	e.used = false;
	assert_int_equal(pf_decide(&e, a, 7, LSN_B, LSN_A), PF_NONE);
}

static void test_config_checked(void **state)
{
	(void)state;
	const char *one[] = { "host=x" };
	struct apc_config c = { .conninfo = one,
				.tenant = "0123456789abcdef0123456789abcdef",
				.timeline = "0123456789abcdef0123456789abcdef" };
	char err[APC_ERROR_BYTES];
	assert_int_equal(config_check(&c, err), 0);
	c.window = APC_WINDOW_MAX + 1;
	assert_int_equal(config_check(&c, err), -EINVAL);
	assert_non_null(strstr(err, "window"));
	c.window = 0;
	c.version = 4;
	assert_int_equal(config_check(&c, err), -EINVAL);
	c.version = 3;
	c.tenant = "xyz";
	assert_int_equal(config_check(&c, err), -EINVAL);
	c.tenant = "0123456789abcdef0123456789abcdef";
	c.shard_count = APC_SHARDS_MAX + 1;
	assert_int_equal(config_check(&c, err), -EINVAL);
	struct apc_client *cl = (struct apc_client *)&c;
	assert_int_equal(apc_connect(&c, &cl, err), -EINVAL);
	assert_null(cl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shard_hash_matches_engine),
		cmocka_unit_test(test_shard_hash_edges),
		cmocka_unit_test(test_tickets),
		cmocka_unit_test(test_window_fill_and_drain_in_order),
		cmocka_unit_test(test_window_out_of_order_consumption),
		cmocka_unit_test(test_window_keeps_a_slot_for_reads),
		cmocka_unit_test(test_window_drop_fails_in_flight_only),
		cmocka_unit_test(test_answers_in_order_and_ownership),
		cmocka_unit_test(test_bad_answers_drop_the_connection),
		cmocka_unit_test(test_prefetch_taken_and_evicted),
		cmocka_unit_test(test_prefetch_failed_with_its_connection),
		cmocka_unit_test(test_routing_to_shards),
		cmocka_unit_test(test_prefetch_usable),
		cmocka_unit_test(test_prefetch_ring_slots),
		cmocka_unit_test(test_config_checked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
