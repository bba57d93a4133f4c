// Kernel timeline of any CUDA process, graph replays included, from CUPTI's activity records:
// start and end of every kernel as it ran, so the gaps between a decode step's kernels (launch
// latency, dependency waits) show, which Nsight Compute's one-kernel-at-a-time replay cannot.
// Nsight Systems does not work on the GPU machine (the device tool's KINDS.md); CUPTI does.
//
// Build (on the GPU machine or here):
//   g++ -O2 -shared -fPIC -o /tmp/libkernel_trace.so bench/gpu/kernel_trace.cc \
//       -I/usr/local/cuda/include -L/usr/local/cuda/lib64 -lcupti
// Use: LD_PRELOAD=/tmp/libkernel_trace.so KERNEL_TRACE_CSV=/tmp/trace.csv python3 ...
// The process calls kernel_trace_clear() where the interesting part starts and kernel_trace_flush()
// where it ends (ctypes); the CSV
// holds one line per kernel: start_ns,end_ns,graph_id,correlation_id,grid,block,name; and one
// per memory copy (name "memcpy <kind> <bytes> B", grid and block "0x0x0"), so that a round's
// read-backs and uploads show between its kernels; and one per runtime API call that takes the
// host more than 2 us (name "api <function>", grid and block "host"), so that what the host was
// doing while the device waited shows on the same clock (graph launches, pageable copies).
#include <cupti.h>
#include <cxxabi.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

namespace {

struct KernelRecord {
  uint64_t start, end;
  uint32_t graph_id, correlation_id;
  int grid[3], block[3];
  std::string name;
};

std::mutex g_mutex;
std::vector<KernelRecord> g_records;
constexpr size_t kBufferBytes = 8u << 20;

std::string Demangle(const char* name) {
  if (name == nullptr) return "?";
  int status = 0;
  char* d = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  std::string out = status == 0 && d != nullptr ? d : name;
  std::free(d);
  // Drop the parameter list; keep the template arguments.
  if (!out.empty() && out.back() == ')') {
    int depth = 0;
    for (size_t i = out.size(); i-- > 0;) {
      if (out[i] == ')') ++depth;
      if (out[i] == '(' && --depth == 0) {
        out.resize(i);
        break;
      }
    }
  }
  for (char& c : out)
    if (c == ',') c = ';';  // the CSV's separator
  return out;
}

void CUPTIAPI BufferRequested(uint8_t** buffer, size_t* size, size_t* max_records) {
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, kBufferBytes));
  *size = kBufferBytes;
  *max_records = 0;
}

void CUPTIAPI BufferCompleted(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid) {
  CUpti_Activity* record = nullptr;
  std::lock_guard<std::mutex> lock(g_mutex);
  while (cuptiActivityGetNextRecord(buffer, valid, &record) == CUPTI_SUCCESS) {
    if (record->kind == CUPTI_ACTIVITY_KIND_MEMCPY) {
      const auto* m = reinterpret_cast<const CUpti_ActivityMemcpy6*>(record);
      static const char* const kKinds[] = {"?", "HtoD", "DtoH", "HtoA", "AtoH", "AtoA", "AtoD", "DtoA", "DtoD", "HtoH"};
      const char* kind = m->copyKind < sizeof(kKinds) / sizeof(kKinds[0]) ? kKinds[m->copyKind] : "?";
      g_records.push_back({m->start, m->end, m->graphId, m->correlationId, {0, 0, 0}, {0, 0, 0},
                           std::string("memcpy ") + kind + " " + std::to_string(m->bytes) + " B"});
      continue;
    }
    if (record->kind == CUPTI_ACTIVITY_KIND_RUNTIME) {
      const auto* a = reinterpret_cast<const CUpti_ActivityAPI*>(record);
      if (a->end - a->start < 2000) continue;  // the many short calls would bury the slow ones
      const char* name = nullptr;
      if (cuptiGetCallbackName(CUPTI_CB_DOMAIN_RUNTIME_API, a->cbid, &name) != CUPTI_SUCCESS || name == nullptr) {
        name = "?";
      }
      g_records.push_back({a->start, a->end, 0, a->correlationId, {-1, 0, 0}, {-1, 0, 0}, std::string("api ") + name});
      continue;
    }
    if (record->kind != CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL && record->kind != CUPTI_ACTIVITY_KIND_KERNEL) continue;
    const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(record);
    g_records.push_back({k->start, k->end, k->graphId, k->correlationId, {k->gridX, k->gridY, k->gridZ},
                         {k->blockX, k->blockY, k->blockZ}, Demangle(k->name)});
  }
  std::free(buffer);
}

__attribute__((constructor)) void Start() {
  if (cuptiActivityRegisterCallbacks(BufferRequested, BufferCompleted) != CUPTI_SUCCESS ||
      cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) != CUPTI_SUCCESS ||
      cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMCPY) != CUPTI_SUCCESS ||
      cuptiActivityEnable(CUPTI_ACTIVITY_KIND_RUNTIME) != CUPTI_SUCCESS) {
    std::fprintf(stderr, "kernel_trace: CUPTI activity tracing could not start\n");
  }
}

}  // namespace

// Forgets every kernel recorded so far (the process calls it where its region of interest starts).
extern "C" void kernel_trace_clear() {
  cuptiActivityFlushAll(1);
  std::lock_guard<std::mutex> lock(g_mutex);
  g_records.clear();
}

// Writes every kernel recorded so far to $KERNEL_TRACE_CSV and forgets them. Returns the count.
extern "C" int kernel_trace_flush() {
  cuptiActivityFlushAll(1);
  const char* path = std::getenv("KERNEL_TRACE_CSV");
  std::lock_guard<std::mutex> lock(g_mutex);
  FILE* f = std::fopen(path ? path : "kernel_trace.csv", "a");
  if (f == nullptr) return -1;
  for (const KernelRecord& r : g_records) {
    if (r.grid[0] < 0) {  // a host API call
      std::fprintf(f, "%llu,%llu,0,%u,host,host,%s\n", static_cast<unsigned long long>(r.start),
                   static_cast<unsigned long long>(r.end), r.correlation_id, r.name.c_str());
      continue;
    }
    std::fprintf(f, "%llu,%llu,%u,%u,%dx%dx%d,%dx%dx%d,%s\n", static_cast<unsigned long long>(r.start),
                 static_cast<unsigned long long>(r.end), r.graph_id, r.correlation_id, r.grid[0], r.grid[1], r.grid[2],
                 r.block[0], r.block[1], r.block[2], r.name.c_str());
  }
  std::fclose(f);
  const int n = static_cast<int>(g_records.size());
  g_records.clear();
  return n;
}
