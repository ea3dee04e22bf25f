/* libFuzzer: the safetensors reader (strict JSON header parser). */
#include "fuzz_tfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_tfile(data, size, LQ_TFILE_SAFETENSORS);
    return 0;
}
