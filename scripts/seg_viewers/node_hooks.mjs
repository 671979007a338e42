// Node module hooks for ohif_load_seg.mjs (registered with module.register before the
// viewer packages are imported). Two things a browser bundler (webpack, as OHIF builds) does
// that plain Node does not:
// 1. Bare package names that do not resolve from the importing file are looked up again in
//    the folder named by $SEG_VIEWERS_MODULES (the node_modules where check_seg_viewers.sh
//    ran `npm ci` for the pinned package.json; default /tmp/autoseg-seg-viewers/node_modules,
//    the wrapper's default), so the script can stay in the repository and
//    the packages outside it.
// 2. `dicom-parser` 1.8.21 ships only a UMD bundle: `import * as dicomParser from
//    'dicom-parser'` (as @cornerstonejs/dicom-image-loader writes it) gets no named exports in
//    Node. ESM imports of it get a shim that re-exports the bundle's properties by name.
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const SHIM = 'autoseg-shim:dicom-parser';
const modulesDir = process.env.SEG_VIEWERS_MODULES || '/tmp/autoseg-seg-viewers/node_modules';
const fallbackParent = modulesDir ? pathToFileURL(path.join(path.resolve(modulesDir), '..', 'index.mjs')).href : null;

function isBare(spec) {
  return !/^(\.{0,2}\/|[a-z][a-z0-9+.-]*:)/i.test(spec);
}

async function resolveBare(spec, context, nextResolve) {
  try {
    return await nextResolve(spec, context);
  } catch (err) {
    if (!fallbackParent || !isBare(spec) || err?.code !== 'ERR_MODULE_NOT_FOUND') throw err;
    return nextResolve(spec, { ...context, parentURL: fallbackParent });
  }
}

export async function resolve(spec, context, nextResolve) {
  if (spec === 'dicom-parser' && context.conditions?.includes('import')) {
    return { url: SHIM, shortCircuit: true };
  }
  return resolveBare(spec, context, nextResolve);
}

export async function load(url, context, nextLoad) {
  if (url === SHIM) {
    let file;
    try {
      file = createRequire(import.meta.url).resolve('dicom-parser');
    } catch (err) {
      if (!fallbackParent) throw err;
      file = createRequire(fallbackParent).resolve('dicom-parser');
    }
    const names = Object.keys(createRequire(import.meta.url)(file)).filter((n) => /^[A-Za-z_$][\w$]*$/.test(n) && n !== 'default');
    const source = [
      "import { createRequire } from 'node:module';",
      `const m = createRequire(${JSON.stringify(pathToFileURL(file).href)})(${JSON.stringify(file)});`,
      'export default m;',
      ...names.map((n) => `export const ${n} = m.${n};`),
    ].join('\n');
    return { format: 'module', source, shortCircuit: true };
  }
  return nextLoad(url, context);
}
