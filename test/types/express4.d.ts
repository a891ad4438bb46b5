// `express4` is an npm alias of express@4 (root devDependencies); its API, as far as
// the tests use it, is typed by @types/express.
declare module 'express4' {
  import express from 'express'
  export default express
}
