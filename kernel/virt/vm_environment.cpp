// The exit handler's view of the world outside a Vm (vm_environment.hpp): its ports.
#include "nestor/virt/vm_environment.hpp"

#include "nestor/abi/caps.h"
#include "nestor/cap/cnode.hpp"

namespace nestor::virt {

// Whether the domain holds a USE capability covering [port, port + size) in its CSpace root. A
// built-in guest holds none.
bool VmEnvironment::port_held(u16 port, u8 size) {
    if (!vm_.domain) return false;
    const cap::Capability& root = vm_.domain->cspace_root().cap;
    if (root.type != cap::ObjectType::cnode) return false;
    auto& cnode = static_cast<cap::CNode&>(*root.object);
    for (u64 i = 0; i < cnode.slot_count(); ++i) {
        const cap::Capability& c = cnode.slot(i).cap;
        if (c.type == cap::ObjectType::ioport_range && (c.rights & NESTOR_RIGHT_IOPORT_USE) && port >= c.first_port &&
            u32{port} + size <= c.first_port + c.port_count)
            return true;
    }
    return false;
}

}  // namespace nestor::virt
