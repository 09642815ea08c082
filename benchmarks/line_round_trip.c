/* The round trip of one cache line between two CPUs: two threads, each
 * pinned to one of the CPUs given (argv[1], argv[2]), take turns storing to
 * a shared line and waiting for the other's store. Prints the median over
 * 7 runs of 20000 round trips, in ns.
 *
 * Why the benchmarks print it: the host places our two vCPUs on two cores
 * that share an L3 (a CCD; 55-100 ns here) or on two CCDs (320-400 ns), and
 * moves them between the two placements now and then. Work that both
 * threads share (a parallel region's fork and join, cache lines both write)
 * costs several times more across CCDs, and memory-bound work gets each
 * CCD's own link to memory: the same call's time differs by up to 1.5x
 * between the placements (docs/design.md, "Two placements of the vCPUs"). */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { kTrips = 20000, kRuns = 7 };
static _Alignas(64) atomic_long turn;

static void pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void* answer(void* cpu) {
  pin(*(int*)cpu);
  for (long i = 0; i < (long)kTrips * kRuns; ++i) {
    while (atomic_load_explicit(&turn, memory_order_acquire) != 2 * i + 1) {}
    atomic_store_explicit(&turn, 2 * i + 2, memory_order_release);
  }
  return NULL;
}

static int by_value(const void* a, const void* b) {
  const double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

int main(int argc, char** argv) {
  if (argc != 3) return fprintf(stderr, "usage: %s CPU CPU\n", argv[0]), 2;
  int first = atoi(argv[1]), second = atoi(argv[2]);
  pin(first);
  pthread_t other;
  pthread_create(&other, NULL, answer, &second);
  double ns[kRuns];
  long i = 0;
  for (int r = 0; r < kRuns; ++r) {
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long end = i + kTrips; i < end; ++i) {
      atomic_store_explicit(&turn, 2 * i + 1, memory_order_release);
      while (atomic_load_explicit(&turn, memory_order_acquire) != 2 * i + 2) {}
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    ns[r] = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / kTrips;
  }
  pthread_join(other, NULL);
  qsort(ns, kRuns, sizeof ns[0], by_value);
  printf("%.0f\n", ns[kRuns / 2]);
  return 0;
}
