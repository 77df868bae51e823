#ifndef PCL_CMONGOC_SHIM_H
#define PCL_CMONGOC_SHIM_H
// libmongoc 1.23 / libbson (Debian 12). Swift owns every pointer through
// Sources/Router/Store/Mongo.swift; the helpers below only exist because
// Swift imports bson_error_t's message as a 504-tuple and cannot easily
// walk a document to rename a key.
#include <mongoc/mongoc.h>

static inline const char *pcl_bson_error_message(const bson_error_t *error) {
    return error->message;
}

// A copy of `src` with the top-level key `from` renamed to `to` and moved
// first (MongoDB wants `_id` first; the YAML model calls it `id`). A key
// already named `to` is dropped: `from` is the authority.
static inline bson_t *pcl_bson_copy_renaming(const bson_t *src, const char *from, const char *to) {
    bson_t *out = bson_new();
    bson_iter_t iter;
    if (bson_iter_init_find(&iter, src, from)) {
        bson_append_iter(out, to, -1, &iter);
    }
    if (bson_iter_init(&iter, src)) {
        while (bson_iter_next(&iter)) {
            const char *key = bson_iter_key(&iter);
            if (strcmp(key, from) == 0 || strcmp(key, to) == 0) continue;
            bson_append_iter(out, NULL, 0, &iter);
        }
    }
    return out;
}

// A reply document: storage the driver initialises (it calls bson_init on
// it), destroyed and freed by pcl_reply_free.
static inline bson_t *pcl_reply_new(void) {
    bson_t *reply = (bson_t *) bson_aligned_alloc0(BSON_ALIGNOF(bson_t), sizeof(bson_t));
    bson_init(reply);
    return reply;
}

static inline void pcl_reply_free(bson_t *reply) {
    bson_destroy(reply);
    bson_free(reply);
}

static inline bool pcl_bson_get_int64(const bson_t *doc, const char *key, int64_t *out) {
    bson_iter_t iter;
    if (!bson_iter_init_find(&iter, doc, key)) return false;
    switch (bson_iter_type(&iter)) {
    case BSON_TYPE_INT32: case BSON_TYPE_INT64: case BSON_TYPE_DOUBLE: case BSON_TYPE_BOOL:
        *out = bson_iter_as_int64(&iter);
        return true;
    default:
        return false;
    }
}

// Points into `doc`: copy before `doc` goes away.
static inline const char *pcl_bson_get_utf8(const bson_t *doc, const char *key) {
    bson_iter_t iter;
    if (!bson_iter_init_find(&iter, doc, key) || bson_iter_type(&iter) != BSON_TYPE_UTF8) return NULL;
    return bson_iter_utf8(&iter, NULL);
}

// A new document (caller destroys) holding the sub-document at `key`.
static inline bson_t *pcl_bson_get_document(const bson_t *doc, const char *key) {
    bson_iter_t iter;
    uint32_t length = 0;
    const uint8_t *data = NULL;
    if (!bson_iter_init_find(&iter, doc, key) || bson_iter_type(&iter) != BSON_TYPE_DOCUMENT) return NULL;
    bson_iter_document(&iter, &length, &data);
    return data ? bson_new_from_data(data, length) : NULL;
}
#endif
