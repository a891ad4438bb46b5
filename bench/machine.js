// What every benchmark report starts with: the machine, Node.js, the command and the date,
// so a figure quoted elsewhere can be traced to where and how it was measured.
import os from 'node:os'

export function machine () {
  return {
    cpu: os.cpus()[0]?.model?.trim(),
    cores: os.cpus().length,
    memoryGiB: Number((os.totalmem() / 2 ** 30).toFixed(1)),
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    node: process.version,
  }
}

/** The header lines, labels padded to `width`. */
export function machineLines (m, command, width) {
  const label = (name) => `${name}:`.padEnd(width)
  return [
    `${label('machine')}${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.platform}`,
    `${label('node')}${m.node}`,
    `${label('command')}${command}`,
    `${label('date')}${new Date().toISOString()}`,
  ]
}
