// Fails when src/api/schema.d.ts is not what openapi-typescript makes of evp's OpenAPI
// document today: run `npm run gen:api` and commit the result.
import { readFile } from 'node:fs/promises'
import openapiTS, { astToString } from 'openapi-typescript'

const doc = new URL('../../internal/openapi/openapi.json', import.meta.url)
const committed = new URL('../src/api/schema.d.ts', import.meta.url)

const fresh = astToString(await openapiTS(JSON.parse(await readFile(doc, 'utf8'))))
let current = ''
try {
  current = await readFile(committed, 'utf8')
} catch {
  // missing: reported below
}
const norm = (s) => s.replace(/^\/\*\*[\s\S]*?\*\/\s*/, '').replace(/\r\n/g, '\n').trim()
if (norm(fresh) !== norm(current)) {
  console.error('web/src/api/schema.d.ts is stale: it does not match internal/openapi/openapi.json.')
  console.error('Run `npm run gen:api` in web/ (or `make web-types`) and commit the result.')
  process.exit(1)
}
console.log('api types: web/src/api/schema.d.ts matches internal/openapi/openapi.json')
