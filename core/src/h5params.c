/*
 * h5params.c - parameter files in NNabla's HDF5 layout (nn.save_parameters / load_parameters).
 *
 * Layout, as NNabla's Python saver writes it through h5py:
 *   - one dataset per parameter at its scoped path: "affine1/affine/W" is the group
 *     /affine1, the group /affine1/affine and the dataset W. Groups carry no attributes.
 *   - the dataset holds the values, float32 little endian, in the parameter's shape
 *     (row-major; a 0-d parameter is a scalar dataspace), contiguous, uncompressed.
 *   - two scalar attributes per dataset: `need_grad`, h5py's bool (an enum over int8 with
 *     FALSE=0, TRUE=1), and `index`, an int64 giving the parameter's 0-based position.
 *
 * Saving builds the file in memory (the image briefly costs about twice the file's size),
 * writes it to "<path>.tmp-<pid>" and renames that over path, so a failed save leaves an
 * existing file untouched. Loading walks every group, accepts what NNabla's C++ writer
 * produces as well (int32 attributes, hbool, float64 or integer datasets), and sorts the
 * datasets by (index, name) with unindexed ones last, as NNabla's loader does.
 * HDF5's own error printing is switched off while we call it; failures become messages.
 *
 * Solver state files (Solver.save_states / load_states) use the same machinery: for each
 * parameter a group at its scoped name with an int64 attribute `index` (its position in
 * the solver), a scalar int64 dataset `t` and one float32 dataset per state ("mean",
 * "var", ...). nl_h5_open_states lists their datasets sorted by (group index, name), as
 * NNabla's loader does; messages then say load_states.
 */
#include "internal.h"
#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

enum {
    MAX_GROUP_DEPTH = 64,         /* guards against hard-link cycles between groups */
    RAW_DETAIL_LEN = 1024         /* room for one message from HDF5's error stack */
};

typedef struct {
    char *name;                   /* full path without the leading '/' */
    int ndim;
    int64_t shape[NL_MAX_NDIM];
    int64_t count;                /* elements */
    int need_grad;
    int has_index;
    int64_t index;
    int has_group_index;          /* solver state files: the `index` of the dataset's group */
    int64_t group_index;
} h5_entry;

struct nl_h5file {
    hid_t file;
    char *path;
    const char *who;              /* "load_parameters" or "load_states", for messages */
    int states;                   /* a solver state file: read the groups' `index` */
    int n, cap;
    h5_entry *entries;
};

/* ---- HDF5 error handling -------------------------------------------------------------- */

typedef struct { H5E_auto2_t func; void *data; int saved; } h5_quiet;

/* Stops HDF5 from printing its error stack to stderr; h5_quiet_end restores the handler. */
static void h5_quiet_begin(h5_quiet *q) {
    q->saved = H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data) >= 0;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static void h5_quiet_end(const h5_quiet *q) {
    if (q->saved) H5Eset_auto2(H5E_DEFAULT, q->func, q->data);
}

static herr_t keep_innermost_error(unsigned n, const H5E_error2_t *err, void *buf) {
    if (n == 0 && err->desc) snprintf((char *)buf, RAW_DETAIL_LEN, "%s", err->desc);
    return 0;
}

/* The most specific message on HDF5's error stack, on one line; call it right after the
 * failing call. The file drivers' messages are long ("file write failed: time = ...,
 * errno = 28, error message = 'No space left on device', ..."): keep the system's part. */
static const char *h5_error_detail(char buf[256]) {
    char raw[RAW_DETAIL_LEN] = "";
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, keep_innermost_error, raw);
    const char *sys = strstr(raw, "error message = '");
    if (sys) {
        sys += strlen("error message = '");
        int head = (int)strcspn(raw, ":\n"), len = (int)strcspn(sys, "'");
        snprintf(buf, 256, "%.*s: %.*s", head, raw, len, sys);
    } else {
        snprintf(buf, 256, "%.*s", (int)strcspn(raw, "\n"), raw);
    }
    if (!buf[0]) snprintf(buf, 256, "unknown HDF5 error");
    return buf;
}

/* nl_error with HDF5's most specific message appended in parentheses. */
static int h5_fail(const char *fmt, ...) NL_PRINTF(1, 2);
static int h5_fail(const char *fmt, ...) {
    char detail[256], msg[1024];
    h5_error_detail(detail);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return nl_error("%s (HDF5: %s)", msg, detail);
}

static void close_dataset(hid_t id) { if (id >= 0) H5Dclose(id); }
static void close_space(hid_t id) { if (id >= 0) H5Sclose(id); }
static void close_type(hid_t id) { if (id >= 0) H5Tclose(id); }
static void close_attr(hid_t id) { if (id >= 0) H5Aclose(id); }
static void close_plist(hid_t id) { if (id >= 0) H5Pclose(id); }

static const char *type_class_name(H5T_class_t c) {
    switch (c) {
    case H5T_INTEGER: return "integer";
    case H5T_FLOAT: return "float";
    case H5T_TIME: return "time";
    case H5T_STRING: return "string";
    case H5T_BITFIELD: return "bitfield";
    case H5T_OPAQUE: return "opaque";
    case H5T_COMPOUND: return "compound";
    case H5T_REFERENCE: return "reference";
    case H5T_ENUM: return "enum";
    case H5T_VLEN: return "variable-length";
    case H5T_ARRAY: return "array";
    default: return "unknown";
    }
}

/* ---- saving --------------------------------------------------------------------------- */

/* Orders names component by component: '/' sorts below every other character, so a
 * name is immediately followed by its descendants ("a/W" by "a/W/x"). */
static int rank_char(unsigned char c) { return c == 0 ? 0 : c == '/' ? 1 : c + 2; }

static int compare_paths(const void *pa, const void *pb) {
    const unsigned char *a = *(const unsigned char *const *)pa;
    const unsigned char *b = *(const unsigned char *const *)pb;
    while (*a && *a == *b) a++, b++;
    return rank_char(*a) - rank_char(*b);
}

static int check_name_syntax(const char *who, int i, const char *name) {
    if (!name) return nl_error("%s: parameter %d has no name", who, i + 1);
    size_t len = strlen(name);
    if (len == 0) return nl_error("%s: parameter %d has an empty name", who, i + 1);
    if (name[0] == '/') return nl_error("%s: parameter name '%s' starts with '/'", who, name);
    if (name[len - 1] == '/') return nl_error("%s: parameter name '%s' ends with '/'", who, name);
    if (strstr(name, "//")) return nl_error("%s: parameter name '%s' contains '//'", who, name);
    /* HDF5 reads a "." component as "this group", so "a/./W" would come back as "a/W". */
    for (const char *p = name; p; p = strchr(p, '/')) {
        if (*p == '/') p++;
        if (p[0] == '.' && (p[1] == '/' || p[1] == 0))
            return nl_error("%s: parameter name '%s' has a '.' component", who, name);
    }
    return 0;
}

/* Rejects bad names, duplicates, and a name that is also a group of another ("a/W" and
 * "a/W/x"), which HDF5 cannot represent. */
static int check_names(const char *who, int n, const char *const *names) {
    for (int i = 0; i < n; i++)
        if (check_name_syntax(who, i, names[i])) return -1;
    if (n < 2) return 0;
    const char **sorted = malloc((size_t)n * sizeof *sorted);
    if (!sorted) return nl_error("%s: out of memory", who);
    memcpy(sorted, names, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, compare_paths);
    int rc = 0;
    for (int k = 0; k + 1 < n && rc == 0; k++) {
        const char *a = sorted[k], *b = sorted[k + 1];
        size_t la = strlen(a);
        if (strcmp(a, b) == 0)
            rc = nl_error("%s: parameter name '%s' appears twice", who, a);
        else if (strncmp(a, b, la) == 0 && b[la] == '/')
            rc = nl_error("%s: parameter '%s' would also have to be the group "
                          "holding parameter '%s'", who, a, b);
    }
    free(sorted);
    return rc;
}

/* Element count of a shape, or -1 (with a message) when it is invalid or too large. */
static int64_t checked_count(const char *who, const char *name, int ndim, const int64_t *shape) {
    int64_t count = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0) {
            nl_error("%s: parameter '%s' has a negative dimension %lld", who, name, (long long)shape[d]);
            return -1;
        }
        if (shape[d] > 0 && count > (INT64_MAX / (int64_t)sizeof(float)) / shape[d]) {
            nl_error("%s: parameter '%s' is too large", who, name);
            return -1;
        }
        count *= shape[d];
    }
    return count;
}

static int check_save_args(const char *path, int n, const char *const *names, const int *ndims,
                           const int64_t *const *shapes, const float *const *data,
                           const int *need_grad) {
    if (!path || !path[0]) return nl_error("save_parameters: no file name given");
    if (n < 0) return nl_error("save_parameters: negative parameter count %d", n);
    if (n > 0 && (!names || !ndims || !shapes || !data || !need_grad))
        return nl_error("save_parameters: missing names, shapes, data or need_grad lists");
    if (check_names("save_parameters", n, names)) return -1;
    for (int i = 0; i < n; i++) {
        if (ndims[i] < 0 || ndims[i] > NL_MAX_NDIM)
            return nl_error("save_parameters: parameter '%s' has %d dimensions (at most %d)",
                            names[i], ndims[i], (int)NL_MAX_NDIM);
        if (ndims[i] > 0 && !shapes[i])
            return nl_error("save_parameters: parameter '%s' has no shape", names[i]);
        int64_t count = checked_count("save_parameters", names[i], ndims[i], shapes[i]);
        if (count < 0) return -1;
        if (count > 0 && !data[i])
            return nl_error("save_parameters: parameter '%s' has no data", names[i]);
    }
    return 0;
}

/* h5py's bool: an enum over int8 with FALSE=0 and TRUE=1. */
static hid_t make_bool_enum(void) {
    hid_t t = H5Tenum_create(H5T_STD_I8LE);
    if (t < 0) return -1;
    int8_t f = 0, tr = 1;
    if (H5Tenum_insert(t, "FALSE", &f) < 0 || H5Tenum_insert(t, "TRUE", &tr) < 0) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

static herr_t write_scalar_attr(hid_t obj, const char *attr, hid_t file_type, hid_t mem_type,
                                const void *value) {
    hid_t space = H5Screate(H5S_SCALAR);
    if (space < 0) return -1;
    hid_t a = H5Acreate2(obj, attr, file_type, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = a < 0 ? -1 : H5Awrite(a, mem_type, value);
    close_attr(a);
    close_space(space);
    return rc;
}

static int write_parameter(hid_t file, hid_t lcpl, hid_t bool_type, const char *path,
                           int64_t index, const char *name, int ndim, const int64_t *shape,
                           const float *data, int need_grad) {
    hsize_t dims[NL_MAX_NDIM];
    int64_t count = 1;
    for (int d = 0; d < ndim; d++) {
        dims[d] = (hsize_t)shape[d];
        count *= shape[d];
    }
    int rc = -1;
    hid_t ds = -1;
    hid_t space = ndim == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(ndim, dims, NULL);
    if (space < 0) {
        h5_fail("save_parameters: cannot make the dataspace of parameter '%s' for '%s'", name, path);
        goto done;
    }
    ds = H5Dcreate2(file, name, H5T_IEEE_F32LE, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    if (ds < 0) {
        h5_fail("save_parameters: cannot create the dataset of parameter '%s' in '%s'", name, path);
        goto done;
    }
    if (count > 0 && H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
        h5_fail("save_parameters: cannot write parameter '%s' to '%s'", name, path);
        goto done;
    }
    int8_t flag = need_grad ? 1 : 0;
    if (write_scalar_attr(ds, "need_grad", bool_type, bool_type, &flag) < 0) {
        h5_fail("save_parameters: cannot write need_grad of parameter '%s' to '%s'", name, path);
        goto done;
    }
    if (write_scalar_attr(ds, "index", H5T_STD_I64LE, H5T_NATIVE_INT64, &index) < 0) {
        h5_fail("save_parameters: cannot write index of parameter '%s' to '%s'", name, path);
        goto done;
    }
    rc = 0;
done:
    close_dataset(ds);
    close_space(space);
    return rc;
}

/* What a file holds: fill(file, lcpl, path, ctx) writes it into an open HDF5 file; lcpl
 * creates intermediate groups. Returns 0, or -1 with a message. */
typedef int (*h5_fill_fn)(hid_t file, hid_t lcpl, const char *path, const void *ctx);

typedef struct {
    int n;
    const char *const *names;
    const int *ndims;
    const int64_t *const *shapes;
    const float *const *data;
    const int *need_grad;
} params_ctx;

static int fill_parameters(hid_t file, hid_t lcpl, const char *path, const void *ctx) {
    const params_ctx *c = ctx;
    int rc = 0;
    hid_t bool_type = make_bool_enum();
    if (bool_type < 0)
        return h5_fail("save_parameters: cannot set up HDF5 for '%s'", path);
    for (int i = 0; i < c->n && rc == 0; i++)
        rc = write_parameter(file, lcpl, bool_type, path, i, c->names[i], c->ndims[i],
                             c->shapes[i], c->data[i], c->need_grad[i]);
    close_type(bool_type);
    return rc;
}

/* Builds the whole file in memory (HDF5's core driver, no backing store) and hands back
 * a malloc'd copy of its image. HDF5 itself never writes to disk here: a failed H5Fclose
 * (disk full during the final flush) leaves a broken file id behind that crashes the
 * process at exit (seen with HDF5 1.10.8), so write_image_file does the disk writing. */
static int build_file_image(const char *who, const char *path, h5_fill_fn fill, const void *ctx,
                            void **image, size_t *image_size) {
    int rc = -1;
    void *buf = NULL;
    hid_t file = -1, lcpl = -1;
    ssize_t size = 0;
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_fapl_core(fapl, (size_t)1 << 20, 0) < 0 ||
        H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0) {
        h5_fail("%s: cannot set up HDF5 for '%s'", who, path);
        goto done;
    }
    file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (file < 0) {
        h5_fail("%s: cannot create an HDF5 file for '%s'", who, path);
        goto done;
    }
    lcpl = H5Pcreate(H5P_LINK_CREATE);
    if (lcpl < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0) {
        h5_fail("%s: cannot set up HDF5 for '%s'", who, path);
        goto done;
    }
    if (fill(file, lcpl, path, ctx) < 0) goto done;
    /* The image is the driver's buffer as it stands: flush HDF5's metadata cache first. */
    if (H5Fflush(file, H5F_SCOPE_GLOBAL) < 0) {
        h5_fail("%s: cannot lay out the HDF5 file for '%s'", who, path);
        goto done;
    }
    size = H5Fget_file_image(file, NULL, 0);
    if (size <= 0) {
        h5_fail("%s: cannot lay out the HDF5 file for '%s'", who, path);
        goto done;
    }
    buf = malloc((size_t)size);
    if (!buf) {
        nl_error("%s: out of memory for the %lld-byte file '%s'", who, (long long)size, path);
        goto done;
    }
    if (H5Fget_file_image(file, buf, (size_t)size) != size) {
        h5_fail("%s: cannot lay out the HDF5 file for '%s'", who, path);
        goto done;
    }
    rc = 0;
done:
    close_plist(lcpl);
    close_plist(fapl);
    if (file >= 0 && H5Fclose(file) < 0 && rc == 0)
        rc = h5_fail("%s: cannot finish the HDF5 file for '%s'", who, path);
    if (rc == 0) {
        *image = buf;
        *image_size = (size_t)size;
    } else {
        free(buf);
    }
    return rc;
}

/* Writes the image to the already open temporary file, flushes it to disk and closes it. */
static int write_image_file(const char *who, FILE *f, const char *tmp, const char *path,
                            const void *image, size_t size) {
    int ok = fwrite(image, 1, size, f) == size && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int err = errno;
    if (fclose(f) != 0 && ok) {
        ok = 0;
        err = errno;
    }
    if (!ok)
        return nl_error("%s: cannot write '%s' (temporary file '%s'): %s", who, path, tmp,
                        strerror(err));
    return 0;
}

/* Builds the file in memory, writes it to "<path>.tmp-<pid>" and renames that over path:
 * a failure at any point leaves an existing file at path untouched. */
static int save_atomically(const char *who, const char *path, h5_fill_fn fill, const void *ctx) {
    size_t len = strlen(path) + 32;
    char *tmp = malloc(len);
    if (!tmp) return nl_error("%s: out of memory", who);
    snprintf(tmp, len, "%s.tmp-%ld", path, (long)getpid());

    /* Open the temporary file first, so that a bad directory fails before any work. */
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        int rc = nl_error("%s: cannot write '%s' (temporary file '%s'): %s", who,
                          path, tmp, strerror(errno));
        free(tmp);
        return rc;
    }
    void *image = NULL;
    size_t size = 0;
    h5_quiet q;
    h5_quiet_begin(&q);
    int rc = build_file_image(who, path, fill, ctx, &image, &size);
    h5_quiet_end(&q);
    if (rc == 0) rc = write_image_file(who, f, tmp, path, image, size);
    else fclose(f);
    free(image);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = nl_error("%s: cannot rename '%s' to '%s': %s", who, tmp, path, strerror(errno));
    if (rc != 0) remove(tmp);
    free(tmp);
    return rc;
}

int nl_h5_save(const char *path, int n, const char *const *names, const int *ndims,
               const int64_t *const *shapes, const float *const *data,
               const int *need_grad) {
    if (check_save_args(path, n, names, ndims, shapes, data, need_grad)) return -1;
    params_ctx c = { n, names, ndims, shapes, data, need_grad };
    return save_atomically("save_parameters", path, fill_parameters, &c);
}

/* ---- loading: the directory of datasets ----------------------------------------------- */

typedef struct {
    nl_h5file *h;
    const char *prefix;           /* path of the group being listed, "" for the root */
    int depth;
    int failed;                   /* our callback set a message */
    int has_group_index;          /* state files: the listed group's `index` attribute */
    int64_t group_index;
} walk_ctx;

static int walk_group(nl_h5file *h, hid_t group, const char *prefix, int depth);

static h5_entry *append_entry(nl_h5file *h) {
    if (h->n == h->cap) {
        if (h->cap >= (1 << 29)) {
            nl_error("%s: '%s' holds too many datasets", h->who, h->path);
            return NULL;
        }
        int cap = h->cap ? 2 * h->cap : 16;
        h5_entry *e = realloc(h->entries, (size_t)cap * sizeof *e);
        if (!e) { nl_error("%s: out of memory", h->who); return NULL; }
        h->entries = e;
        h->cap = cap;
    }
    h5_entry *e = &h->entries[h->n];
    memset(e, 0, sizeof *e);
    return e;
}

/* Reads a scalar integer (or enum, e.g. h5py's bool) attribute as int64.
 * *found is 0 when the attribute is absent. */
static int read_int_attr(const nl_h5file *h, hid_t ds, const char *dsname, const char *attr,
                         int allow_enum, int64_t *value, int *found) {
    *found = 0;
    htri_t exists = H5Aexists(ds, attr);
    if (exists < 0)
        return h5_fail("%s: cannot look up attribute '%s' of '%s' in '%s'", h->who,
                       attr, dsname, h->path);
    if (exists == 0) return 0;

    int rc = -1;
    hid_t space = -1, ftype = -1, base = -1;
    hid_t a = H5Aopen(ds, attr, H5P_DEFAULT);
    if (a < 0) {
        h5_fail("%s: cannot open attribute '%s' of '%s' in '%s'", h->who, attr, dsname, h->path);
        goto done;
    }
    space = H5Aget_space(a);
    ftype = H5Aget_type(a);
    if (space < 0 || ftype < 0) {
        h5_fail("%s: cannot inspect attribute '%s' of '%s' in '%s'", h->who, attr, dsname, h->path);
        goto done;
    }
    if (H5Sget_simple_extent_npoints(space) != 1) {
        nl_error("%s: attribute '%s' of '%s' in '%s' is not a single value", h->who,
                 attr, dsname, h->path);
        goto done;
    }
    H5T_class_t cls = H5Tget_class(ftype);
    if (cls == H5T_INTEGER) {
        if (H5Aread(a, H5T_NATIVE_INT64, value) < 0) {
            h5_fail("%s: cannot read attribute '%s' of '%s' in '%s'", h->who, attr, dsname, h->path);
            goto done;
        }
    } else if (cls == H5T_ENUM && allow_enum) {
        /* Read the raw enum value, then convert it from the enum's integer base type. */
        union { int64_t i; unsigned char bytes[16]; } buf;
        memset(&buf, 0, sizeof buf);
        base = H5Tget_super(ftype);
        if (base < 0 || H5Tget_size(ftype) > sizeof(int64_t) || H5Tget_class(base) != H5T_INTEGER) {
            nl_error("%s: attribute '%s' of '%s' in '%s' is an unsupported enum", h->who,
                     attr, dsname, h->path);
            goto done;
        }
        if (H5Aread(a, ftype, buf.bytes) < 0 ||
            H5Tconvert(base, H5T_NATIVE_INT64, 1, buf.bytes, NULL, H5P_DEFAULT) < 0) {
            h5_fail("%s: cannot read attribute '%s' of '%s' in '%s'", h->who, attr, dsname, h->path);
            goto done;
        }
        *value = buf.i;
    } else {
        nl_error("%s: attribute '%s' of '%s' in '%s' has type %s "
                 "(expected an integer%s)", h->who, attr, dsname, h->path, type_class_name(cls),
                 allow_enum ? " or a bool" : "");
        goto done;
    }
    *found = 1;
    rc = 0;
done:
    close_type(base);
    close_type(ftype);
    close_space(space);
    close_attr(a);
    return rc;
}

/* Records one dataset: checks that it is numeric, reads its shape and attributes. */
static int add_dataset(nl_h5file *h, hid_t ds, const char *name, const walk_ctx *where) {
    int rc = -1;
    hid_t space = -1;
    hid_t type = H5Dget_type(ds);
    if (type < 0) {
        h5_fail("%s: cannot read the type of dataset '%s' in '%s'", h->who, name, h->path);
        goto done;
    }
    H5T_class_t cls = H5Tget_class(type);
    if (cls != H5T_FLOAT && cls != H5T_INTEGER) {
        nl_error("%s: dataset '%s' in '%s' is not numeric (it holds %s data)", h->who,
                 name, h->path, type_class_name(cls));
        goto done;
    }
    space = H5Dget_space(ds);
    if (space < 0) {
        h5_fail("%s: cannot read the shape of dataset '%s' in '%s'", h->who, name, h->path);
        goto done;
    }
    hsize_t dims[NL_MAX_NDIM];
    int ndim = 0;
    H5S_class_t scls = H5Sget_simple_extent_type(space);
    if (scls == H5S_SIMPLE) {
        ndim = H5Sget_simple_extent_ndims(space);
        if (ndim < 0) {
            h5_fail("%s: cannot read the shape of dataset '%s' in '%s'", h->who, name, h->path);
            goto done;
        }
        if (ndim > NL_MAX_NDIM) {
            nl_error("%s: dataset '%s' in '%s' has %d dimensions (at most %d)", h->who,
                     name, h->path, ndim, (int)NL_MAX_NDIM);
            goto done;
        }
        if (H5Sget_simple_extent_dims(space, dims, NULL) < 0) {
            h5_fail("%s: cannot read the shape of dataset '%s' in '%s'", h->who, name, h->path);
            goto done;
        }
    } else if (scls != H5S_SCALAR) {
        nl_error("%s: dataset '%s' in '%s' has no dataspace (an empty dataset)", h->who,
                 name, h->path);
        goto done;
    }

    h5_entry *e = append_entry(h);
    if (!e) goto done;
    e->ndim = ndim;
    for (int d = 0; d < ndim; d++) {
        if (dims[d] > (hsize_t)INT64_MAX) {
            nl_error("%s: dataset '%s' in '%s' is too large", h->who, name, h->path);
            goto done;
        }
        e->shape[d] = (int64_t)dims[d];
    }
    e->count = checked_count(h->who, name, ndim, e->shape);
    if (e->count < 0) goto done;

    int64_t v;
    int found;
    if (read_int_attr(h, ds, name, "need_grad", 1, &v, &found) < 0) goto done;
    e->need_grad = found && v != 0;
    if (read_int_attr(h, ds, name, "index", 0, &v, &found) < 0) goto done;
    e->has_index = found;
    e->index = found ? v : -1;
    e->has_group_index = where->has_group_index;
    e->group_index = where->has_group_index ? where->group_index : -1;

    e->name = strdup(name);
    if (!e->name) { nl_error("%s: out of memory", h->who); goto done; }
    h->n++;                       /* the entry counts only once it is complete */
    rc = 0;
done:
    close_space(space);
    close_type(type);
    return rc;
}

static char *join_path(const char *prefix, const char *name) {
    size_t lp = strlen(prefix), ln = strlen(name);
    char *s = malloc(lp + ln + 2);
    if (!s) return NULL;
    if (lp) {
        memcpy(s, prefix, lp);
        s[lp++] = '/';
    }
    memcpy(s + lp, name, ln + 1);
    return s;
}

/* H5Literate callback: datasets are recorded, groups are walked, other links skipped
 * (soft and external links, committed datatypes), as h5py's visit() does. */
static herr_t visit_link(hid_t group, const char *name, const H5L_info_t *info, void *op) {
    walk_ctx *ctx = op;
    nl_h5file *h = ctx->h;
    if (info->type != H5L_TYPE_HARD) return 0;
    char *full = join_path(ctx->prefix, name);
    if (!full) { nl_error("%s: out of memory", h->who); ctx->failed = 1; return -1; }
    int rc = 0;
    hid_t obj = H5Oopen(group, name, H5P_DEFAULT);
    if (obj < 0) {
        rc = h5_fail("%s: cannot open '%s' in '%s'", h->who, full, h->path);
    } else {
        H5I_type_t kind = H5Iget_type(obj);
        if (kind == H5I_DATASET) rc = add_dataset(h, obj, full, ctx);
        else if (kind == H5I_GROUP) rc = walk_group(h, obj, full, ctx->depth + 1);
        H5Oclose(obj);
    }
    free(full);
    if (rc < 0) { ctx->failed = 1; return -1; }
    return 0;
}

static int walk_group(nl_h5file *h, hid_t group, const char *prefix, int depth) {
    if (depth > MAX_GROUP_DEPTH)
        return nl_error("%s: groups in '%s' are nested more than %d deep "
                        "(does a group link to itself?)", h->who, h->path, MAX_GROUP_DEPTH);
    walk_ctx ctx = { h, prefix, depth, 0, 0, -1 };
    if (h->states) {
        int found;
        if (read_int_attr(h, group, prefix[0] ? prefix : "/", "index", 0, &ctx.group_index, &found) < 0)
            return -1;
        ctx.has_group_index = found;
    }
    if (H5Literate(group, H5_INDEX_NAME, H5_ITER_INC, NULL, visit_link, &ctx) < 0) {
        if (ctx.failed) return -1;
        return h5_fail("%s: cannot list group '/%s' in '%s'", h->who, prefix, h->path);
    }
    return 0;
}

/* NNabla's order: by index, then by name; datasets without an index come last. */
static int compare_entries(const void *pa, const void *pb) {
    const h5_entry *a = pa, *b = pb;
    if (a->has_index != b->has_index) return a->has_index ? -1 : 1;
    if (a->has_index && a->index != b->index) return a->index < b->index ? -1 : 1;
    return strcmp(a->name, b->name);
}

/* NNabla's load_states order: by the group's index, then by name; unindexed ones last. */
static int compare_state_entries(const void *pa, const void *pb) {
    const h5_entry *a = pa, *b = pb;
    if (a->has_group_index != b->has_group_index) return a->has_group_index ? -1 : 1;
    if (a->has_group_index && a->group_index != b->group_index)
        return a->group_index < b->group_index ? -1 : 1;
    return strcmp(a->name, b->name);
}

/* Says specifically why path cannot be read: missing, a directory, unreadable. */
static int check_readable(const char *who, const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return nl_error("%s: '%s' does not exist", who, path);
        return nl_error("%s: cannot access '%s': %s", who, path, strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) return nl_error("%s: '%s' is a directory, not a file", who, path);
    if (access(path, R_OK) != 0)
        return nl_error("%s: '%s' is not readable: %s", who, path, strerror(errno));
    return 0;
}

static hid_t open_hdf5_file(const char *who, const char *path) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0) {
        close_plist(fapl);
        h5_fail("%s: cannot set up HDF5 for '%s'", who, path);
        return -1;
    }
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (file < 0) {
        char detail[256];
        h5_error_detail(detail);
        H5Pclose(fapl);
        /* A valid signature that still fails to open is worth HDF5's reason (truncation,
         * a locking problem); anything else is simply not HDF5. */
        if (H5Fis_hdf5(path) > 0)
            nl_error("%s: '%s' is not an HDF5 file (or is truncated): %s", who, path, detail);
        else
            nl_error("%s: '%s' is not an HDF5 file (or is truncated)", who, path);
        return -1;
    }
    H5Pclose(fapl);
    return file;
}

static nl_h5file *open_directory_raw(const char *who, int states, const char *path) {
    nl_h5file *h = calloc(1, sizeof *h);
    if (!h || !(h->path = strdup(path))) {
        free(h);
        nl_error("%s: out of memory", who);
        return NULL;
    }
    h->who = who;
    h->states = states;
    h5_quiet q;
    h5_quiet_begin(&q);
    h->file = open_hdf5_file(who, path);
    int rc = h->file < 0 ? -1 : walk_group(h, h->file, "", 0);
    h5_quiet_end(&q);
    if (rc < 0) {
        nl_h5_close(h);
        return NULL;
    }
    if (h->n > 1)
        qsort(h->entries, (size_t)h->n, sizeof *h->entries,
              states ? compare_state_entries : compare_entries);
    return h;
}

/* Some corrupt files (a few flipped bytes in the object headers) crash HDF5 1.10 itself.
 * So the file is first read completely in a forked child: if the child dies of a signal
 * the file is reported as corrupt and the caller's process never touches it. */
static int probe_in_child(const char *who, int states, const char *path) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return 0;                       /* cannot probe: go on carefully */
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) { dup2(devnull, 1); dup2(devnull, 2); }
        nl_h5file *h = open_directory_raw(who, states, path);
        if (!h) _exit(1);
        for (int i = 0; i < h->n; i++) {
            int64_t n = 1;
            for (int k = 0; k < h->entries[i].ndim; k++) n *= h->entries[i].shape[k];
            float *buf = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
            if (!buf || nl_h5_read(h, i, buf, n) != 0) _exit(1);
            free(buf);
        }
        _exit(0);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) return 0;
    }
    if (WIFSIGNALED(status))
        return nl_error("%s: '%s' is corrupt: reading it crashed the HDF5 library (signal %d); "
                        "nothing was loaded", who, path, WTERMSIG(status));
    return 0;
}

static nl_h5file *open_directory(const char *who, int states, const char *path) {
    if (!path || !path[0]) { nl_error("%s: no file name given", who); return NULL; }
    if (check_readable(who, path)) return NULL;
    if (probe_in_child(who, states, path)) return NULL;
    return open_directory_raw(who, states, path);
}

nl_h5file *nl_h5_open(const char *path) { return open_directory("load_parameters", 0, path); }

nl_h5file *nl_h5_open_states(const char *path) { return open_directory("load_states", 1, path); }

void nl_h5_close(nl_h5file *h) {
    if (!h) return;
    if (h->file >= 0) {
        h5_quiet q;
        h5_quiet_begin(&q);
        H5Fclose(h->file);
        h5_quiet_end(&q);
    }
    for (int i = 0; i < h->n; i++) free(h->entries[i].name);
    free(h->entries);
    free(h->path);
    free(h);
}

/* ---- loading: accessors and data ------------------------------------------------------ */

static const h5_entry *entry_at(const nl_h5file *h, int i) {
    if (!h) { nl_error("load_parameters: no open parameter file"); return NULL; }
    if (i < 0 || i >= h->n) {
        nl_error("%s: dataset number %d is out of range (the file has %d)", h->who, i, h->n);
        return NULL;
    }
    return &h->entries[i];
}

int nl_h5_count(const nl_h5file *h) {
    if (!h) return nl_error("load_parameters: no open parameter file");
    return h->n;
}

const char *nl_h5_name(const nl_h5file *h, int i) {
    const h5_entry *e = entry_at(h, i);
    return e ? e->name : NULL;
}

int nl_h5_ndim(const nl_h5file *h, int i) {
    const h5_entry *e = entry_at(h, i);
    return e ? e->ndim : -1;
}

const int64_t *nl_h5_shape(const nl_h5file *h, int i) {
    const h5_entry *e = entry_at(h, i);
    return e ? e->shape : NULL;
}

int nl_h5_need_grad(const nl_h5file *h, int i) {
    const h5_entry *e = entry_at(h, i);
    return e ? e->need_grad : -1;
}

int64_t nl_h5_index(const nl_h5file *h, int i) {
    const h5_entry *e = entry_at(h, i);
    return e ? e->index : -1;
}

int64_t nl_h5_group_index(const nl_h5file *h, int i) {
    const h5_entry *e = entry_at(h, i);
    return e ? e->group_index : -1;
}

/* Reads dataset i (n elements) converted to mem_type (HDF5 converts numeric types). */
static int read_dataset(nl_h5file *h, int i, hid_t mem_type, void *dst, int64_t n) {
    const h5_entry *e = entry_at(h, i);
    if (!e) return -1;
    if (n != e->count)
        return nl_error("%s: dataset '%s' in '%s' has %lld elements, but %lld were expected",
                        h->who, e->name, h->path, (long long)e->count, (long long)n);
    if (n == 0) return 0;
    if (!dst) return nl_error("%s: no destination buffer for dataset '%s'", h->who, e->name);
    h5_quiet q;
    h5_quiet_begin(&q);
    int rc = 0;
    hid_t ds = H5Dopen2(h->file, e->name, H5P_DEFAULT);
    if (ds < 0)
        rc = h5_fail("%s: cannot open dataset '%s' in '%s'", h->who, e->name, h->path);
    else if (H5Dread(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) < 0)
        rc = h5_fail("%s: cannot read dataset '%s' from '%s'", h->who, e->name, h->path);
    close_dataset(ds);
    h5_quiet_end(&q);
    return rc;
}

int nl_h5_read(nl_h5file *h, int i, float *dst, int64_t n) {
    return read_dataset(h, i, H5T_NATIVE_FLOAT, dst, n);
}

int nl_h5_read_int(nl_h5file *h, int i, int64_t *dst, int64_t n) {
    return read_dataset(h, i, H5T_NATIVE_INT64, dst, n);
}

/* ---- solver state files (Solver.save_states / load_states) ---------------------------- */

typedef struct {
    int n;
    const char *const *names;
    const int *ndims;
    const int64_t *const *shapes;
    const int64_t *ts;
    int n_states;
    const char *const *state_names;
    const float *const *data;
} states_ctx;

static int check_states_args(const char *path, const states_ctx *c) {
    const char *who = "save_states";
    if (!path || !path[0]) return nl_error("%s: no file name given", who);
    if (c->n < 0) return nl_error("%s: negative parameter count %d", who, c->n);
    if (c->n_states < 0) return nl_error("%s: negative state count %d", who, c->n_states);
    if ((c->n > 0 && (!c->names || !c->ndims || !c->shapes || !c->ts ||
                      (c->n_states > 0 && !c->data))) ||
        (c->n_states > 0 && !c->state_names))
        return nl_error("%s: missing names, shapes, steps, state names or data", who);
    if (check_names(who, c->n, c->names)) return -1;
    for (int k = 0; k < c->n_states; k++) {
        const char *s = c->state_names[k];
        if (!s || !s[0] || strchr(s, '/') || strcmp(s, ".") == 0 || strcmp(s, "t") == 0)
            return nl_error("%s: state name '%s' is not allowed (empty, '.', 't' or with a '/')",
                            who, s ? s : "(null)");
        for (int j = 0; j < k; j++)
            if (strcmp(c->state_names[j], s) == 0)
                return nl_error("%s: state name '%s' appears twice", who, s);
    }
    for (int i = 0; i < c->n; i++) {
        if (c->ndims[i] < 0 || c->ndims[i] > NL_MAX_NDIM)
            return nl_error("%s: parameter '%s' has %d dimensions (at most %d)", who,
                            c->names[i], c->ndims[i], (int)NL_MAX_NDIM);
        if (c->ndims[i] > 0 && !c->shapes[i])
            return nl_error("%s: parameter '%s' has no shape", who, c->names[i]);
        int64_t count = checked_count(who, c->names[i], c->ndims[i], c->shapes[i]);
        if (count < 0) return -1;
        if (c->ts[i] < 0)
            return nl_error("%s: parameter '%s' has a negative step count %lld", who,
                            c->names[i], (long long)c->ts[i]);
        for (int k = 0; k < c->n_states; k++)
            if (count > 0 && !c->data[(size_t)i * c->n_states + k])
                return nl_error("%s: state '%s' of parameter '%s' has no data", who,
                                c->state_names[k], c->names[i]);
    }
    return 0;
}

/* One parameter's group, as NNabla's Solver.save_states writes it with h5py: attribute
 * `index` (the parameter's position), scalar int64 dataset `t`, one float32 dataset per
 * state in the parameter's shape, each with an attribute `index` (the state's position). */
static int write_state_group(hid_t file, hid_t lcpl, const char *path, const states_ctx *c,
                             int i) {
    const char *name = c->names[i];
    hsize_t dims[NL_MAX_NDIM];
    int64_t count = 1;
    for (int d = 0; d < c->ndims[i]; d++) {
        dims[d] = (hsize_t)c->shapes[i][d];
        count *= c->shapes[i][d];
    }
    int rc = -1;
    hid_t ds = -1, space = -1, scalar = -1;
    int64_t index = i;
    hid_t grp = H5Gcreate2(file, name, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    if (grp < 0) {
        h5_fail("save_states: cannot create the group of parameter '%s' in '%s'", name, path);
        goto done;
    }
    if (write_scalar_attr(grp, "index", H5T_STD_I64LE, H5T_NATIVE_INT64, &index) < 0) {
        h5_fail("save_states: cannot write index of parameter '%s' to '%s'", name, path);
        goto done;
    }
    scalar = H5Screate(H5S_SCALAR);
    space = c->ndims[i] == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(c->ndims[i], dims, NULL);
    if (scalar < 0 || space < 0) {
        h5_fail("save_states: cannot make the dataspaces of parameter '%s' for '%s'", name, path);
        goto done;
    }
    ds = H5Dcreate2(grp, "t", H5T_STD_I64LE, scalar, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (ds < 0 || H5Dwrite(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &c->ts[i]) < 0) {
        h5_fail("save_states: cannot write t of parameter '%s' to '%s'", name, path);
        goto done;
    }
    for (int k = 0; k < c->n_states; k++) {
        close_dataset(ds);
        const char *sname = c->state_names[k];
        const float *data = c->data[(size_t)i * c->n_states + k];
        int64_t sindex = k;
        ds = H5Dcreate2(grp, sname, H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (ds < 0 ||
            (count > 0 && H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) ||
            write_scalar_attr(ds, "index", H5T_STD_I64LE, H5T_NATIVE_INT64, &sindex) < 0) {
            h5_fail("save_states: cannot write state '%s' of parameter '%s' to '%s'", sname, name,
                    path);
            goto done;
        }
    }
    rc = 0;
done:
    close_dataset(ds);
    close_space(space);
    close_space(scalar);
    if (grp >= 0) H5Gclose(grp);
    return rc;
}

static int fill_states(hid_t file, hid_t lcpl, const char *path, const void *ctx) {
    const states_ctx *c = ctx;
    for (int i = 0; i < c->n; i++)
        if (write_state_group(file, lcpl, path, c, i) < 0) return -1;
    return 0;
}

int nl_h5_save_states(const char *path, int n, const char *const *names, const int *ndims,
                      const int64_t *const *shapes, const int64_t *ts, int n_states,
                      const char *const *state_names, const float *const *data) {
    states_ctx c = { n, names, ndims, shapes, ts, n_states, state_names, data };
    if (check_states_args(path, &c)) return -1;
    return save_atomically("save_states", path, fill_states, &c);
}

/* HDF5 closes itself at exit through atexit(); after reading corrupt files that can loop
 * and print "infinite loop closing library". Every file is closed explicitly here, so
 * the library is told not to install that handler (it must be said before HDF5 starts). */
__attribute__((constructor)) static void h5_no_atexit(void) { H5dont_atexit(); }
