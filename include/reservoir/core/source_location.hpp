#pragma once
// reservoir::source_location: std::source_location where the standard library
// has it; otherwise (clang 14 with libstdc++) a stand-in with the same members,
// built on the compiler builtins both compilers share.

#include <version>

#if defined(__cpp_lib_source_location)
#include <source_location>
namespace reservoir {
using source_location = std::source_location;
}
#else
#include <cstdint>
namespace reservoir {
class source_location {
public:
    static constexpr source_location current(const char* file = __builtin_FILE(),
                                             const char* function = __builtin_FUNCTION(),
                                             std::uint_least32_t line = __builtin_LINE()) noexcept {
        source_location loc;
        loc.file_ = file;
        loc.function_ = function;
        loc.line_ = line;
        return loc;
    }
    constexpr source_location() noexcept = default;
    constexpr const char* file_name() const noexcept { return file_; }
    constexpr const char* function_name() const noexcept { return function_; }
    constexpr std::uint_least32_t line() const noexcept { return line_; }
    constexpr std::uint_least32_t column() const noexcept { return 0; }

private:
    const char* file_ = "";
    const char* function_ = "";
    std::uint_least32_t line_ = 0;
};
}  // namespace reservoir
#endif
