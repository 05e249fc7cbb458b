/* CHECK(c): a property of a fuzz target; aborts (a finding) when false. */
#ifndef MSAL_FUZZ_CHECK_H
#define MSAL_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(c)                                                                               \
    do {                                                                                       \
        if (!(c)) {                                                                            \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #c);           \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

#endif
