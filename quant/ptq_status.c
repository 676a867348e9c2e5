/* ptq_status.c — names of the ptq_status codes, for messages. */
#include "quant/ptq.h"

const char *ptq_status_to_string(int status) {
    switch (status) {
    case PTQ_OK:
        return "ok";
    case PTQ_ERR_ARG:
        return "bad argument";
    case PTQ_ERR_NONFINITE:
        return "non-finite input";
    case PTQ_ERR_NOT_PD:
        return "matrix not positive definite";
    case PTQ_ERR_NOMEM:
        return "out of memory";
    case PTQ_ERR_EMPTY:
        return "no calibration data";
    default:
        return "unknown status";
    }
}
