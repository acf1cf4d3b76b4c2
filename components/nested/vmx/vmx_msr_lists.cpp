#include "vmx_msr_lists.hpp"

#include "nestor/arch/vmx_vmcs.hpp"
#include "vmx_capabilities.hpp"

namespace nestor::nested::vmx {
namespace {

using namespace intel_vmx;
using namespace x86_regs;
using x86::vmx::Level;
using x86::vmx::NestedHardware;

struct MsrEntry {
    u32 index;
    u32 reserved;
    u64 value;
};
static_assert(sizeof(MsrEntry) == msr_entry::bytes);

bool x2apic(u32 index) { return index >= kMsrX2apicFirst && index <= kMsrX2apicLast; }

// SDM 26.4 and 27.6: what no MSR-load entry may name.
bool load_forbidden(const MsrEntry& e) {
    return e.reserved || x2apic(e.index) || e.index == kMsrFsBase || e.index == kMsrGsBase ||
           e.index == kMsrSmmMonitorCtl || e.index == kMsrSmbase;
}

// SDM 27.4: what no MSR-store entry may name.
bool store_forbidden(const MsrEntry& e) { return e.reserved || x2apic(e.index) || e.index == kMsrSmbase; }

bool read_entry(Host& host, u64 list, u32 i, MsrEntry& e) {
    return host.read(list + u64{i} * msr_entry::bytes, &e, sizeof(e));
}

u32 count_of(const Vmcs12& v, u32 count_field) { return static_cast<u32>(read_field(v, count_field)); }

// 0 when every entry of the list at `address_field` loaded into `level`'s MSRs, else the failing
// entry's number from 1.
u32 load_list(const Vmcs12& v, NestedHardware& hw, Host& host, u32 count_field, u32 address_field, Level level) {
    u32 count = count_of(v, count_field), limit = msr_list_limit();
    u64 list = read_field(v, address_field);
    for (u32 i = 0; i < count; ++i) {
        MsrEntry e{};
        if (i >= limit || !read_entry(host, list, i, e) || load_forbidden(e) || !hw.write_msr(level, e.index, e.value))
            return i + 1;
    }
    return 0;
}

}  // namespace

u32 msr_list_limit() {
    u64 scale = (capabilities().misc >> misc::msr_list_scale_shift) & misc::msr_list_scale_mask;
    return misc::msr_list_entries_unit * static_cast<u32>(scale + 1);
}

u32 load_entry_msrs(const Vmcs12& v, NestedHardware& hw, Host& host) {
    return load_list(v, hw, host, field::entry_msr_load_count, field::entry_msr_load_address, Level::l2);
}

bool store_exit_msrs(const Vmcs12& v, NestedHardware& hw, Host& host) {
    u32 count = count_of(v, field::exit_msr_store_count);
    if (count > msr_list_limit()) return false;
    u64 list = read_field(v, field::exit_msr_store_address);
    for (u32 i = 0; i < count; ++i) {
        MsrEntry e{};
        u64 value = 0;
        if (!read_entry(host, list, i, e) || store_forbidden(e) || !hw.read_msr(Level::l2, e.index, value))
            return false;
        if (!host.write(list + u64{i} * msr_entry::bytes + msr_entry::data_offset, &value, sizeof(value))) return false;
    }
    return true;
}

bool load_exit_msrs(const Vmcs12& v, NestedHardware& hw, Host& host) {
    return load_list(v, hw, host, field::exit_msr_load_count, field::exit_msr_load_address, Level::l1) == 0;
}

}  // namespace nestor::nested::vmx
