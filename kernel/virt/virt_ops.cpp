// The backend for this CPU, chosen once by CPU vendor, and the names of its errors.
#include "nestor/virt/virt_ops.hpp"

#include "nestor/platform.hpp"

namespace nestor::virt {
namespace {

const VirtOps* selected_ops = nullptr;
bool ops_selected = false;

}  // namespace

const char* virt_error_name(VirtError error) {
    switch (error) {
    case VirtError::unsupported: return "not supported on this CPU or build";
    case VirtError::disabled_by_firmware: return "disabled by firmware";
    case VirtError::out_of_asids: return "out of ASIDs";
    case VirtError::bad_guest: return "bad guest description";
    case VirtError::overlapping_mapping: return "guest-physical memory mapped twice";
    case VirtError::out_of_memory: return "out of memory";
    }
    return "?";
}

const VirtOps* select_virt_ops() {
    if (ops_selected) return selected_ops;
    ops_selected = true;
    switch (platform::cpu_features().vendor) {
    case CpuVendor::amd: selected_ops = svm_backend(); break;
    case CpuVendor::intel: selected_ops = vmx_backend(); break;
    case CpuVendor::unknown: break;
    }
    if (selected_ops && !selected_ops->supported()) selected_ops = nullptr;
    return selected_ops;
}

}  // namespace nestor::virt
