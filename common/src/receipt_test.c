/* Receipts: issued by a ledger, verified with only the log key; a receipt
 * for another index, a tampered entry or proof, or another log's key is
 * refused. */
#include "flexo/receipt.h"
#include "fx_test.h"
#include "ledger_fixture.h"

#include <stdlib.h>

static void test_receipts(void)
{
	char dir[] = "/tmp/fx_receipt_test.XXXXXX", path[256], cmd[300];
	fxt_party root, coord, alice, other;
	fx_note_verifier v, w;
	fx_receipt_info info;
	fx_ledger *l = NULL;
	uint8_t *rc = NULL;
	size_t len = 0;
	uint64_t idx, mine = 0;
	fx_diag d;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/l.db", dir);
	fxt_party_init(&root, "root", 9);
	fxt_party_init(&coord, "coordinator", 1);
	fxt_party_init(&alice, "alice", 2);
	fxt_party_init(&other, "other", 3);
	CHECK_OK(fx_ledger_open(path, "flexo.test/receipts", &l, &d));
	if (l == NULL)
		return;
	{
		fxt_party *m[] = {&coord, &alice};
		const fx_role r[] = {FX_ROLE_COORDINATOR, FX_ROLE_CONTRIBUTOR};
		CHECK_OK(fxt_roster(l, 1, &root, m, r, 2, &idx, &d));
		CHECK_OK(fxt_anchor(l, &coord, 1, 1, &idx, &d));
	}
	for (int i = 0; i < 9; i++) {
		uint8_t p[2] = {(uint8_t)i, 1};
		CHECK_OK(fxt_accepted(l, &alice, p, 2, &idx, &d));
		if (i == 5)
			mine = idx;
	}
	CHECK(fx_receipt_issue(l, mine, &rc, &len, &d) == FX_ENOTFOUND);
	CHECK_OK(fx_ledger_sign_checkpoint(l, coord.kp.sk, NULL, NULL, &d));
	CHECK_OK(fxt_accepted(l, &alice, (const uint8_t *)"late", 4, &idx, &d));
	CHECK(fx_receipt_issue(l, idx, &rc, &len, &d) == FX_ESTATE);
	CHECK_OK(fx_receipt_issue(l, mine, &rc, &len, &d));
	CHECK_OK(fx_note_verifier_init(&v, "flexo.test/receipts", coord.kp.pk,
	                               NULL));
	CHECK_OK(fx_note_verifier_init(&w, "flexo.test/receipts", other.kp.pk,
	                               NULL));
	CHECK(fx_receipt_verify(rc, len, &v, &info, &d) == FX_OK);
	CHECK(info.index == mine && info.checkpoint.size == 11);
	CHECK(info.kind == FLEXO__LEDGER__V1__ENTRY__KIND_ACCEPTED);
	CHECK(fx_receipt_verify(rc, len, &w, &info, &d) == FX_EBADSIG);

	/* flip every byte in turn: nothing but the untouched receipt passes */
	{
		int accepted = 0;
		for (size_t i = 0; i < len; i++) {
			rc[i] ^= 0x01;
			if (fx_receipt_verify(rc, len, &v, &info, NULL) ==
			    FX_OK)
				accepted++;
			rc[i] ^= 0x01;
		}
		CHECK_MSG(accepted == 0, "%d tampered receipts accepted",
		          accepted);
	}
	/* the same proof does not prove a neighbour */
	{
		Flexo__V1__Receipt *r =
		    flexo__v1__receipt__unpack(NULL, len, rc);
		uint8_t buf[8192];
		size_t n;
		CHECK(r != NULL);
		if (r != NULL) {
			r->ledger_index = mine + 1;
			CHECK(flexo__v1__receipt__get_packed_size(r) <
			      sizeof(buf));
			n = flexo__v1__receipt__pack(r, buf);
			CHECK(fx_receipt_verify(buf, n, &v, &info, &d) ==
			      FX_EMISMATCH);
			flexo__v1__receipt__free_unpacked(r, NULL);
		}
	}
	free(rc);
	fx_ledger_close(l);
	fxt_party_release(&root);
	fxt_party_release(&coord);
	fxt_party_release(&alice);
	fxt_party_release(&other);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	RUN(test_receipts);
	return FX_TEST_REPORT();
}
