/* The calling thread's CPU time in ms: clock_gettime(CLOCK_THREAD_CPUTIME_ID), which
 * the kernel brings up to date on each read (thread-cpu.js says why nothing in
 * Node 20 will do). Built by thread-cpu.js with the system's C compiler. */
#include <node_api.h>
#include <time.h>

static napi_value thread_cpu_ms(napi_env env, napi_callback_info info) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  napi_value v;
  napi_create_double(env, t.tv_sec * 1e3 + t.tv_nsec / 1e6, &v);
  return v;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "threadCpuMs", NAPI_AUTO_LENGTH, thread_cpu_ms, NULL, &fn);
  napi_set_named_property(env, exports, "threadCpuMs", fn);
  return exports;
}
