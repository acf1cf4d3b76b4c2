/* The whole Nestor hypercall ABI. */
#ifndef NESTOR_ABI_H
#define NESTOR_ABI_H

#include "nestor/abi/version.h"
#include "nestor/abi/errors.h"
#include "nestor/abi/caps.h"
#include "nestor/abi/domain.h"
#include "nestor/abi/physcaps.h"
#include "nestor/abi/hypercall.h"
#include "nestor/abi/guest_slots.h"

#endif
