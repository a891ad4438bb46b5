/* The calling thread's CPU time in ms: clock_gettime(CLOCK_THREAD_CPUTIME_ID), which
 * the kernel brings up to date on each read (thread-cpu.js says why nothing in
 * Node 20 will do); and its context switches so far, [voluntary, involuntary]
 * (getrusage(RUSAGE_THREAD)): a wait for a lock or another thread, or preemption by
 * another task on its core. Built by thread-cpu.js with the system's C compiler. */
#define _GNU_SOURCE
#include <node_api.h>
#include <sys/resource.h>
#include <time.h>

static napi_value thread_cpu_ms(napi_env env, napi_callback_info info) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  napi_value v;
  napi_create_double(env, t.tv_sec * 1e3 + t.tv_nsec / 1e6, &v);
  return v;
}

static napi_value thread_switches(napi_env env, napi_callback_info info) {
  struct rusage r;
  getrusage(RUSAGE_THREAD, &r);
  napi_value out, v;
  napi_create_array_with_length(env, 2, &out);
  napi_create_double(env, (double)r.ru_nvcsw, &v);
  napi_set_element(env, out, 0, v);
  napi_create_double(env, (double)r.ru_nivcsw, &v);
  napi_set_element(env, out, 1, v);
  return out;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "threadCpuMs", NAPI_AUTO_LENGTH, thread_cpu_ms, NULL, &fn);
  napi_set_named_property(env, exports, "threadCpuMs", fn);
  napi_create_function(env, "threadSwitches", NAPI_AUTO_LENGTH, thread_switches, NULL, &fn);
  napi_set_named_property(env, exports, "threadSwitches", fn);
  return exports;
}
