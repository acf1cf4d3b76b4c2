# Build options that compose an appliance. Nested virtualization is not security supported yet,
# so it is off unless a preset asks for it.
option(AMD_SVM "Build the AMD SVM backend" ON)
option(INTEL_VMX "Build the Intel VMX backend" ON)
# The PC platform (components/pc): the device models for domains with `platform = "pc"`. Off, the
# image has none of them, and such domains are refused by name.
option(PC_PLATFORM "Build the PC platform's device models into the kernel" ON)
# The built-in test guests (nestor.builtin-guest=NAME): test-only code, so the appliance presets
# leave them out; with them off the option names itself in an error line.
option(BUILTIN_GUESTS "Build the built-in test guests into the kernel" ON)
# NESTED_VIRT, like a Kconfig y/m/n: ON links the nested component into the image, MODULE builds
# it as a boot module that the kernel (linked with the null stub) loads at boot when the
# manifest names it, OFF links only the null stub. NESTOR_NESTED_MODE is the value, normalised.
set(NESTED_VIRT OFF CACHE STRING "Nested virtualization: ON (linked in), MODULE (a boot module) or OFF (null stub)")
set_property(CACHE NESTED_VIRT PROPERTY STRINGS ON MODULE OFF)
string(TOUPPER "${NESTED_VIRT}" nestor_nested_upper)
if(nestor_nested_upper STREQUAL "MODULE")
  set(NESTOR_NESTED_MODE MODULE)
elseif(NESTED_VIRT)
  set(NESTOR_NESTED_MODE ON)
else()
  set(NESTOR_NESTED_MODE OFF)
endif()

if(NOT AMD_SVM AND NOT INTEL_VMX)
  message(FATAL_ERROR "Nestor needs at least one of AMD_SVM and INTEL_VMX")
endif()

set(NESTOR_VERSION "${PROJECT_VERSION}")

# Option values as 0/1 for the code (the kernel reads them as constants, never as #ifdefs).
foreach(opt AMD_SVM INTEL_VMX)
  if(${opt})
    set(NESTOR_${opt}_VALUE 1)
  else()
    set(NESTOR_${opt}_VALUE 0)
  endif()
endforeach()
# NESTED_VIRT: 0 OFF, 1 ON, 2 MODULE (kernel/include/nestor/kernel.hpp names them).
set(NESTOR_NESTED_VIRT_VALUE_OFF 0)
set(NESTOR_NESTED_VIRT_VALUE_ON 1)
set(NESTOR_NESTED_VIRT_VALUE_MODULE 2)
set(NESTOR_NESTED_VIRT_VALUE ${NESTOR_NESTED_VIRT_VALUE_${NESTOR_NESTED_MODE}})

# Which appliance (boot manifest and guests) the image carries; appliances arrive with the
# manifest support.
set(NESTOR_APPLIANCE "none" CACHE STRING "Appliance packed into the image")
