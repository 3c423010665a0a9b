/*
 * registry.c - the table of all functions, built from registry.def.
 */
#include "../src/function.h"

#define NL_FUNCTION(name) extern const nl_fdef nl_fdef_##name;
#include "registry.def"
#undef NL_FUNCTION

#define NL_FUNCTION(name) &nl_fdef_##name,
const nl_fdef *const nl_registry[] = {
#include "registry.def"
};
#undef NL_FUNCTION

const int nl_registry_size = (int)(sizeof nl_registry / sizeof nl_registry[0]);
