/*
 * layer_fuzz.c - libFuzzer target for the layer reader: arbitrary bytes as a
 * layer file (on the simulated disk) are opened, looked up and scanned.  They
 * must be refused as corrupt (with a message naming the file and offset) or
 * read without a crash; and every value read must carry a sane length.
 */
#include "common/assert.h"
#include "common/err.h"
#include "common/vfs.h"
#include "engine/layer.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int check_value(void *ctx, const struct ar_key *key, ar_lsn lsn, const struct ar_value *v)
{
	(void)ctx;
	(void)key;
	(void)lsn;
	AR_ASSERT(v->len <= AR_VALUE_BYTES_MAX);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ar_vfs *vfs;
	static struct ar_blockcache *cache;
	static uint64_t file_id;
	char err[LYR_ERROR_BYTES];
	struct lyr_reader *r;
	int fd;

	if (!vfs) {
		AR_ASSERT(ar_vfs_sim_create(1, &vfs) == 0);
		AR_ASSERT(ar_blockcache_create(1 << 20, &cache) == 0);
	}
	AR_ASSERT(ar_vfs_open(vfs, "/layer", AR_VFS_WRITE | AR_VFS_CREATE | AR_VFS_TRUNC, &fd) ==
		  0);
	AR_ASSERT(ar_vfs_pwrite(vfs, fd, data, size, 0) == (int64_t)size);
	ar_vfs_close(vfs, fd);
	int rc = lyr_reader_open(vfs, cache, "/layer", ++file_id, &r, err);
	if (rc < 0) {
		AR_ASSERT(rc == -AR_ECORRUPT);
		AR_ASSERT(strstr(err, "\"/layer\"") != NULL);
		return 0;
	}
	const struct lyr_info *info = lyr_reader_info(r);
	rc = lyr_reader_get(r, &info->keys.start, AR_LSN_MAX, check_value, NULL);
	if (rc == 0)
		rc = lyr_reader_scan(r, check_value, NULL);
	AR_ASSERT(rc == 0 || (rc == -AR_ECORRUPT && strstr(lyr_reader_error(r), "offset")));
	lyr_reader_close(r);
	ar_blockcache_drop_file(cache, file_id);
	return 0;
}
