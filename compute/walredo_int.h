/*
 * walredo_int.h - Inside argon-walredo: the in-memory storage manager
 * (walredo_md.c) that replaces md.o and holds the one page being rebuilt.
 * PostgreSQL dialect.
 */
#ifndef AR_COMPUTE_WALREDO_INT_H
#define AR_COMPUTE_WALREDO_INT_H

#include "postgres.h"

#include "storage/buf_internals.h"

/* A new target block: all zeros until a base page is pushed. */
void		walredo_md_begin(BufferTag tag);
/* The target's base page; tag must be the target's. */
void		walredo_md_push(BufferTag tag, const char *page);
/* After a record: copy the target's buffer (if redo loaded it) into the page. */
void		walredo_md_save_target(void);
/* The target page; tag must be the target's. */
const char *walredo_md_get(BufferTag tag);

#endif
