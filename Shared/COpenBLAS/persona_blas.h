// Debian's OpenBLAS (libopenblas-dev): the CBLAS interface, plus the three LAPACK routines
// Persona calls (OpenBLAS ships LAPACK in the same library; Debian has no lapacke header
// without another package, so their Fortran prototypes are declared here).
#ifndef PERSONA_BLAS_H
#define PERSONA_BLAS_H
#include <cblas.h>

void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info);
char *openblas_get_corename(void);
char *openblas_get_config(void);
void dpotri_(const char *uplo, const int *n, double *a, const int *lda, int *info);
#endif
