/* fx_strerror names every error; fx_diag formats and prefixes. */
#include "flexo/err.h"
#include "fx_test.h"

static void test_names(void)
{
	for (int e = 0; e < FX_ERR_COUNT; e++)
		CHECK(strcmp(fx_strerror((fx_err)e), "unknown error") != 0);
	CHECK(strcmp(fx_strerror(FX_ERR_COUNT), "unknown error") == 0);
}

static void test_diag(void)
{
	fx_diag d;
	CHECK(fx_diag_set(&d, FX_EFORMAT, "bad %d", 7) == FX_EFORMAT);
	CHECK(strcmp(d.msg, "bad 7") == 0);
	fx_diag_prefix(&d, "file %s", "x");
	CHECK(strcmp(d.msg, "file x: bad 7") == 0);
	CHECK(fx_diag_set(NULL, FX_EIO, "ignored") == FX_EIO);
}

int main(void)
{
	RUN(test_names);
	RUN(test_diag);
	return FX_TEST_REPORT();
}
