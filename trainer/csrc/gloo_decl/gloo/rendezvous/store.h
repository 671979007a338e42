// Declarations of the gloo types that torch's c10d headers name (ProcessGroupGloo.hpp).
//
// The torch wheel ships c10d's headers but not gloo's. autoseg calls nothing of gloo: it builds
// a `c10d::ProcessGroupGloo` through libtorch's own constructor and calls its collectives
// through `c10d::Backend`. These declarations only let ProcessGroupGloo.hpp compile; the class
// layouts that matter (c10d's) come from torch's headers, and gloo's types appear there only
// behind pointers. Written for autoseg from the member functions ProcessGroupGloo.hpp
// overrides (without GLOO_STORE_HAS_STORE_V2).
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace gloo {
namespace rendezvous {

class Store {
 public:
  virtual ~Store() = default;
  virtual void set(const std::string& key, const std::vector<char>& data) = 0;
  virtual std::vector<char> get(const std::string& key) = 0;
  virtual void wait(const std::vector<std::string>& keys) = 0;
  virtual void wait(
      const std::vector<std::string>& keys,
      const std::chrono::milliseconds& timeout) = 0;
};

} // namespace rendezvous
} // namespace gloo
