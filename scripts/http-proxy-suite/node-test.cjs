'use strict'
// node:test as @fastify/http-proxy's test files see it when run against Affinity:
// the same module, except that `test(name, …)` of a test listed in skips.cjs is
// registered as skipped with its reason. Loaded as require('./node-test.cjs')(file).
const nodeTest = require('node:test')
const { skipReason } = require('./skips.cjs')

module.exports = function forFile (file) {
  function test (name, ...rest) {
    const reason = typeof name === 'string' ? skipReason(file, name) : undefined
    if (reason === undefined) return nodeTest.test(name, ...rest)
    const fn = rest.find(a => typeof a === 'function')
    return nodeTest.test(name, { skip: reason }, fn)
  }
  Object.assign(test, nodeTest, { test, default: test })
  return test
}
