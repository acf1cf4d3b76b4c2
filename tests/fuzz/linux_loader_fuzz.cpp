// libFuzzer target: arbitrary bytes as a Linux bzImage through the kernel's bzImage loader. The
// first four input bytes choose the guest RAM's size (1 MiB to 4 GiB) and the initrd's size; the
// rest is the image, ending exactly where the fuzzer's buffer ends, so a read past it is an ASan
// error. The RAM is a bounds checker that keeps no bytes: every write must lie inside it, and a
// kernel the loader accepts must have been placed as the boot protocol says.
#include <cstdlib>
#include <cstring>

#include "nestor/virt/linux_loader.hpp"

using namespace nestor;
using namespace nestor::virt;

namespace {

void require(bool condition) {
    if (!condition) std::abort();
}

class BoundsRam final : public GuestRam {
public:
    explicit BoundsRam(u64 size) : size_(size) {}
    u64 size() const override { return size_; }
    bool write(u64 gpa, const void* data, usize length) override {
        require(gpa <= size_ && length <= size_ - gpa);
        if (length) touched_ ^= static_cast<const u8*>(data)[length - 1];  // the source must be readable
        return true;
    }
    bool fill(u64 gpa, u8, usize length) override {
        require(gpa <= size_ && length <= size_ - gpa);
        return true;
    }

private:
    u64 size_;
    u8 touched_ = 0;
};

u8 initrd_bytes[1 << 16];

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const u8* data, usize size) {
    if (size < 4) return 0;
    u64 ram_mib = 1 + ((u64{data[0]} | u64{data[1]} << 8) & 0xFFF);
    usize initrd_size = data[2] | usize{data[3]} << 8;
    const u8* image = data + 4;
    usize image_size = size - 4;
    BoundsRam ram(ram_mib << 20);
    GuestModule initrd{initrd_bytes, initrd_size, nullptr};
    auto loaded = load_linux_guest(image, image_size, "console=ttyS0", &initrd, initrd_size ? 1 : 0, ram);
    if (!loaded) {
        require(loaded.error() == LoadError::not_bzimage || loaded.error() == LoadError::linux_protocol_too_old ||
                loaded.error() == LoadError::linux_no_64bit_entry || loaded.error() == LoadError::linux_does_not_fit);
        return 0;
    }
    require(is_bzimage(image, image_size));
    require(loaded->mode == CpuMode::long64 && loaded->protocol == BootProtocol::linux_bzimage);
    require(loaded->entry >= kLoaderAreaEnd + 0x200 && loaded->entry < loaded->image_end);
    require(loaded->image_end <= ram.size() && loaded->info_gpa == kLinuxBootParamsGpa);
    return 0;
}
