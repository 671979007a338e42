// Declarations of the gloo types that torch's c10d headers name; see rendezvous/store.h for why
// autoseg declares them instead of including gloo. `Context::setTimeout` is named by an inline
// member of ProcessGroupGloo that autoseg never calls.
#pragma once

#include <chrono>

namespace gloo {
class Context {
 public:
  void setTimeout(std::chrono::milliseconds timeout);
};
namespace transport {
class Device;
class UnboundBuffer;
} // namespace transport
} // namespace gloo
