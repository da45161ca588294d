// Uploads a file to Hangar with tus-js-client in chunks, aborts it half-way, then resumes it with a new
// Upload given the upload URL (the client asks the server for the offset). Prints the upload's URL.
// Used by tests/tus.rs; tus-js-client is found through NODE_PATH.
'use strict'
const fs = require('fs')
const tus = require('tus-js-client')

const [endpoint, token, path, name] = process.argv.slice(2)
const file = fs.readFileSync(path)
const chunkSize = 256 * 1024
const common = {
  chunkSize,
  headers: { Authorization: `Bearer ${token}` },
  retryDelays: null,
}

function firstHalf () {
  return new Promise((resolve, reject) => {
    const upload = new tus.Upload(file, {
      ...common,
      endpoint,
      metadata: { filename: name, filetype: 'application/octet-stream' },
      onError: reject,
      onSuccess: () => reject(new Error('the upload finished instead of stopping half-way')),
      onChunkComplete: (_chunk, accepted, total) => {
        if (accepted >= total / 2) {
          upload.abort().then(() => resolve({ url: upload.url, offset: accepted }), reject)
        }
      },
    })
    upload.start()
  })
}

function rest (url, offset) {
  return new Promise((resolve, reject) => {
    let first = true
    const upload = new tus.Upload(file, {
      ...common,
      uploadUrl: url,
      onError: reject,
      onChunkComplete: (chunk, accepted) => {
        if (first && accepted - chunk !== offset) {
          reject(new Error(`resumed at ${accepted - chunk}, not at ${offset}`))
        }
        first = false
      },
      onSuccess: () => resolve(upload.url),
    })
    upload.start()
  })
}

firstHalf()
  .then(({ url, offset }) => {
    process.stderr.write(`resumed at ${offset}\n`)
    return rest(url, offset)
  })
  .then((url) => console.log(url))
  .catch((e) => {
    console.error(e)
    process.exit(1)
  })
