// autoseg's C ABI over libtorch's c10d: a TCPStore (rendezvous), a ProcessGroupGloo, and the
// collectives data-parallel training needs (all-reduce of one tensor, broadcast, barrier).
//
// Everything here is libtorch's own code, called through its public C++ API; this file only
// turns C++ exceptions into messages (the caller owns them: autoseg_free_message) and keeps the
// intrusive pointers alive behind opaque handles. Tensors arrive as the `at::Tensor*` that
// tch's `Tensor::as_mut_ptr` hands out (torch-sys' `tensor` type).

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

namespace {

char* message_of(const char* text) {
  return strdup(text);
}

// Runs `body`, turning any exception into `*err` (c10's messages without their C++ backtrace).
template <typename F>
int guarded(char** err, F body) {
  try {
    body();
    return 0;
  } catch (const c10::Error& e) {
    *err = message_of(e.what_without_backtrace());
  } catch (const std::exception& e) {
    *err = message_of(e.what());
  } catch (...) {
    *err = message_of("unknown C++ exception in libtorch's c10d");
  }
  return 1;
}

} // namespace

struct AutosegStore {
  c10::intrusive_ptr<c10d::Store> store;
};

struct AutosegGroup {
  c10::intrusive_ptr<c10d::Backend> backend;
  std::chrono::milliseconds timeout;
};

extern "C" {

void autoseg_free_message(char* message) {
  free(message);
}

// A TCPStore client at host:port (also its server when is_server), under `prefix`.
AutosegStore* autoseg_store_connect(
    const char* host,
    uint16_t port,
    int is_server,
    int64_t timeout_ms,
    const char* prefix,
    char** err) {
  AutosegStore* out = nullptr;
  guarded(err, [&] {
    c10d::TCPStoreOptions opts;
    opts.port = port;
    opts.isServer = is_server != 0;
    opts.waitWorkers = false;
    opts.multiTenant = true;
    opts.timeout = std::chrono::milliseconds(timeout_ms);
    auto tcp = c10::make_intrusive<c10d::TCPStore>(std::string(host), opts);
    auto store = c10::make_intrusive<c10d::PrefixStore>(std::string(prefix), tcp);
    out = new AutosegStore{store};
  });
  return out;
}

// A second client connection to the same store (for a thread of its own).
AutosegStore* autoseg_store_clone(AutosegStore* store, char** err) {
  AutosegStore* out = nullptr;
  guarded(err, [&] { out = new AutosegStore{store->store->clone()}; });
  return out;
}

// store.add(key, delta): the key's new value in *value (delta 0 reads it).
int autoseg_store_add(
    AutosegStore* store,
    const char* key,
    int64_t delta,
    int64_t* value,
    char** err) {
  return guarded(err, [&] { *value = store->store->add(std::string(key), delta); });
}

void autoseg_store_free(AutosegStore* store) {
  delete store;
}

// A Gloo process group of `world_size` ranks over `store` (libtorch's default Gloo device:
// GLOO_SOCKET_IFNAME, else this host's name, else loopback), each collective bounded by
// `timeout_ms`.
AutosegGroup* autoseg_gloo_new(
    AutosegStore* store,
    int rank,
    int world_size,
    int64_t timeout_ms,
    char** err) {
  AutosegGroup* out = nullptr;
  guarded(err, [&] {
    auto timeout = std::chrono::milliseconds(timeout_ms);
    auto options = c10d::ProcessGroupGloo::Options::create_default(timeout);
    auto group = c10::make_intrusive<c10d::ProcessGroupGloo>(
        store->store, rank, world_size, options);
    out = new AutosegGroup{group, timeout};
  });
  return out;
}

// Sums `tensor` over the ranks, in place.
int autoseg_group_allreduce_sum(AutosegGroup* group, at::Tensor* tensor, char** err) {
  return guarded(err, [&] {
    std::vector<at::Tensor> tensors{*tensor};
    c10d::AllreduceOptions opts;
    opts.reduceOp = c10d::ReduceOp::SUM;
    opts.timeout = group->timeout;
    group->backend->allreduce(tensors, opts)->wait(group->timeout);
  });
}

// Copies rank `root`'s `tensor` into every rank's, in place.
int autoseg_group_broadcast(AutosegGroup* group, at::Tensor* tensor, int root, char** err) {
  return guarded(err, [&] {
    std::vector<at::Tensor> tensors{*tensor};
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    opts.timeout = group->timeout;
    group->backend->broadcast(tensors, opts)->wait(group->timeout);
  });
}

// Returns once every rank has called it.
int autoseg_group_barrier(AutosegGroup* group, char** err) {
  return guarded(err, [&] {
    c10d::BarrierOptions opts;
    opts.timeout = group->timeout;
    group->backend->barrier(opts)->wait(group->timeout);
  });
}

void autoseg_group_free(AutosegGroup* group) {
  delete group;
}

} // extern "C"
