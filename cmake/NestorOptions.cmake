# Build options that compose an appliance. Nested virtualization is not security supported yet,
# so it is off unless a preset asks for it.
option(AMD_SVM "Build the AMD SVM backend" ON)
option(INTEL_VMX "Build the Intel VMX backend" ON)
option(NESTED_VIRT "Link the nested-virtualization component (OFF links the null stub)" OFF)

if(NOT AMD_SVM AND NOT INTEL_VMX)
  message(FATAL_ERROR "Nestor needs at least one of AMD_SVM and INTEL_VMX")
endif()

set(NESTOR_VERSION "${PROJECT_VERSION}")

# Option values as 0/1 for the code (the kernel reads them as constants, never as #ifdefs).
foreach(opt AMD_SVM INTEL_VMX NESTED_VIRT)
  if(${opt})
    set(NESTOR_${opt}_VALUE 1)
  else()
    set(NESTOR_${opt}_VALUE 0)
  endif()
endforeach()

# Which appliance (boot manifest and guests) the image carries; appliances arrive with the
# manifest support.
set(NESTOR_APPLIANCE "none" CACHE STRING "Appliance packed into the image")
