// How tfjs's wasm build sizes XNNPACK's thread pool, for Node (./wasm-threads.ts) and the page
// (./browser.ts): min(logical cores / 2, 4) threads, whatever setThreadsCount asks beyond that.
// Both make the wasm start-up see each core twice, so that every core may run a thread.

/** The most threads tfjs's wasm build gives XNNPACK (a constant in its C++). */
export const MAX_WASM_THREADS = 4;
