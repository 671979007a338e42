#!/usr/bin/env node
// Loads a DICOM Segmentation the way OHIF 3.13.2 does and compares it with a label mask.
//
// Usage (the packages pinned by package.json/package-lock.json beside this file installed in
// $SEG_VIEWERS_MODULES, default /tmp/autoseg-seg-viewers/node_modules; scripts/
// check_seg_viewers.sh installs them there with npm ci and runs this):
//   node scripts/seg_viewers/ohif_load_seg.mjs SERIES_DIR SEG_FILE MASK [--labels 1,2,...]
// MASK: .nii / .nii.gz (NIfTI-1, e.g. written by SimpleITK or autoseg with the series'
// geometry) or .npy (C order); read as a z,y,x array: z in the series' slice order sorted
// ascending along the slice normal (row cosine x column cosine, as SimpleITK's series reader
// sorts), y = rows, x = columns.
//
// What runs: OHIF 3.13.2's @ohif/extension-cornerstone-dicom-seg (getSopClassHandlerModule,
// `_loadSegments`) loads a SEG with
//   adaptersSEG.Cornerstone3D.Segmentation.createFromDicomSegImageId(referencedImageIds,
//     segImageId, { metadataProvider: cornerstone metaData, tolerance: 0.001,
//     parserType: 'bitmap' (SEG storage 1.2.840.10008.5.1.4.1.1.66.4), frameImageIds,
//     concurrency: 16 })
// from @cornerstonejs/adapters 5.6.8 (the version that OHIF release pins). This script calls
// that same function with the same options. Around it, standing in for the browser:
// - referencedImageIds: one `dicomfile:N` imageId per source slice (OHIF's local-file
//   scheme), ordered ascending along the slice normal (SimpleITK's order; the adapter places
//   each SEG frame on the image whose SOP instance its DerivationImageSequence references, so
//   this order only lays out the stacked labelmap for the comparison);
// - metadata: cornerstone core's `metaData`, with (priority 10000) an `instance` provider
//   that returns each file's dcmjs-naturalized dataset (what OHIF's MetadataProvider returns
//   from its DicomMetadataStore), and for every other module (imagePlaneModule,
//   generalSeriesModule, generalImageModule, imagePixelModule, ...) the wadouri metadata
//   provider of @cornerstonejs/dicom-image-loader 5.6.8, over the files parsed by its own
//   dataSetCacheManager (dicom-parser 1.8.21);
// - SEG frames: a cornerstone image loader for the scheme `segframe:` returns, for frame N,
//   dicom-image-loader's `wadouri.getPixelData(dataSet, N - 1)` — the frame extraction of
//   OHIF's wadouri/dicomfile path, 1-bit frames unpacked by its `unpackBinaryFrame`. The
//   browser then decodes that in a web worker (decodeLittleEndian: for BitsAllocated 1 the
//   unpacked bytes pass unchanged); that worker step is not run here.
// The adapter builds one Uint8 labelmap image per referenced image (core's
// createAndCacheDerivedLabelmapImage) holding segment numbers. The script prints each
// segment's number, label and voxel count in that labelmap and in the mask, and whether the
// labelmap, stacked z,y,x, equals the mask. Segment number n stands for mask label n
// (autoseg numbers segments 1..n in label order; nnU-Net labels are consecutive), unless
// --labels gives the mask label of each segment number in turn. It also checks that the mask's
// NIfTI origin is the first sorted slice's ImagePositionPatient (so that a mask saved in another
// slice order fails loudly rather than by a voxel mismatch only).
// Also run: createFromDICOMSegBuffer (Cornerstone3D's buffer entry point, dcmjs parsing and
// the adapter's own 1-bit unpacking), with the same comparison.
// Known limits of these viewer versions (found with make_reference_seg.py --synthetic 5x7x4,
// a valid highdicom SEG that dcmqi reads correctly): when rows*columns is not a multiple of 8
// the 1-bit frames do not start on byte boundaries; dicom-image-loader's wadouri
// getUncompressedImageFrame then computes a fractional byte offset for every frame after the
// first and returns it empty (OHIF path: mismatch), and createFromDICOMSegBuffer throws
// "Unexpected 1-bit SEG PixelData length" whenever the packed bytes are an odd count and the
// writer added the even-length pad byte DICOM requires (read from its code). Both are viewer
// limits, not SEG errors; frames of 512x512 etc. are unaffected.
// Exit status: 0 when everything matches, 1 on a mismatch, 2 on a usage or load error.
// Tested with node 20.20 (dcmjs declares node >= 22.13 but runs), against highdicom 0.28.2's
// BINARY SEGs of fixtures/data/dicom/{ct_int16,oblique,coronal} (make_reference_seg.py).

import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

import { register } from 'node:module';

// Before the viewer packages load: find them in $SEG_VIEWERS_MODULES, shim dicom-parser.
register('./node_hooks.mjs', import.meta.url);
let csCore, adaptersSEG, wadouri, dcmjs;
try {
  csCore = await import('@cornerstonejs/core');
  ({ adaptersSEG } = await import('@cornerstonejs/adapters'));
  wadouri = await import('@cornerstonejs/dicom-image-loader/wadouri');
  dcmjs = (await import('dcmjs')).default;
} catch (err) {
  console.error(`error: the viewer packages did not load (${err?.message ?? err}).`);
  console.error('Run scripts/check_seg_viewers.sh once (it runs npm ci into /tmp/autoseg-seg-viewers),');
  console.error('or set SEG_VIEWERS_MODULES to a node_modules installed from scripts/seg_viewers/package-lock.json.');
  process.exit(2);
}
// The installed version of a package: its package.json, found above its resolved entry.
function pkgVersion(name) {
  try {
    const entry = import.meta.resolve(name);
    if (!entry.startsWith('file:')) {
      const pkg = JSON.parse(fs.readFileSync(new URL(import.meta.resolve(`${name}/package.json`)), 'utf8'));
      return pkg.version;
    }
    let dir = path.dirname(new URL(entry).pathname);
    for (; dir !== path.dirname(dir); dir = path.dirname(dir)) {
      const f = path.join(dir, 'package.json');
      if (fs.existsSync(f)) {
        const pkg = JSON.parse(fs.readFileSync(f, 'utf8'));
        if (pkg.name === name) return pkg.version;
      }
    }
  } catch {
    // unknown
  }
  return '?';
}

const { metaData, imageLoader } = csCore;
const SEG_STORAGE = '1.2.840.10008.5.1.4.1.1.66.4';
const LABELMAP_SEG_STORAGE = '1.2.840.10008.5.1.4.1.1.66.7';

function usage(msg) {
  if (msg) console.error(`error: ${msg}`);
  console.error('usage: node ohif_load_seg.mjs SERIES_DIR SEG_FILE MASK(.nii|.nii.gz|.npy) [--labels 1,2,...]');
  process.exit(2);
}

// ---- reading files -------------------------------------------------------------------------

function toArrayBuffer(buf) {
  return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
}

function readDicom(file) {
  const buf = fs.readFileSync(file);
  if (buf.length < 132 || buf.toString('latin1', 128, 132) !== 'DICM') return null;
  const arrayBuffer = toArrayBuffer(buf);
  const dicomData = dcmjs.data.DicomMessage.readFile(arrayBuffer);
  const dataset = dcmjs.data.DicomMetaDictionary.naturalizeDataset(dicomData.dict);
  dataset._meta = dcmjs.data.DicomMetaDictionary.namifyDataset(dicomData.meta);
  return { file, arrayBuffer, dataset };
}

function listFiles(dir) {
  const out = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listFiles(p));
    else if (entry.isFile() && entry.name.toUpperCase() !== 'DICOMDIR') out.push(p);
  }
  return out.sort();
}

const cross = (a, b) => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
const dot = (a, b) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];

// The source series, ascending along the slice normal.
function readSeries(dir) {
  const slices = listFiles(dir)
    .map(readDicom)
    .filter((s) => s && s.dataset.PixelData !== undefined && s.dataset.ImagePositionPatient);
  if (!slices.length) usage(`no DICOM image with pixel data and a position in ${dir}`);
  const series = new Set(slices.map((s) => s.dataset.SeriesInstanceUID));
  if (series.size > 1) usage(`${dir} holds ${series.size} series`);
  const iop = slices[0].dataset.ImageOrientationPatient.map(Number);
  const normal = cross(iop.slice(0, 3), iop.slice(3, 6));
  for (const s of slices) s.z = dot(s.dataset.ImagePositionPatient.map(Number), normal);
  slices.sort((a, b) => a.z - b.z);
  return slices;
}

function readNifti(file) {
  let buf = fs.readFileSync(file);
  if (buf[0] === 0x1f && buf[1] === 0x8b) buf = zlib.gunzipSync(buf);
  let le = true;
  if (buf.readInt32LE(0) !== 348) {
    if (buf.readInt32BE(0) === 348) le = false;
    else usage(`${file}: not a NIfTI-1 file (sizeof_hdr ${buf.readInt32LE(0)})`);
  }
  const i16 = (o) => (le ? buf.readInt16LE(o) : buf.readInt16BE(o));
  const f32 = (o) => (le ? buf.readFloatLE(o) : buf.readFloatBE(o));
  const ndim = i16(40);
  const dims = [1, 2, 3, 4, 5, 6, 7].slice(0, ndim).map((i) => i16(40 + 2 * i));
  if (ndim < 3 || dims.slice(3).some((d) => d !== 1)) usage(`${file}: a 3-D mask is needed, dims ${dims}`);
  const [nx, ny, nz] = dims;
  const datatype = i16(70);
  const voxOffset = Math.round(f32(108));
  const slope = f32(112) || 1;
  const inter = f32(116) || 0;
  const types = {
    2: [1, (o) => buf.readUInt8(o)],
    256: [1, (o) => buf.readInt8(o)],
    4: [2, (o) => (le ? buf.readInt16LE(o) : buf.readInt16BE(o))],
    512: [2, (o) => (le ? buf.readUInt16LE(o) : buf.readUInt16BE(o))],
    8: [4, (o) => (le ? buf.readInt32LE(o) : buf.readInt32BE(o))],
    768: [4, (o) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o))],
    16: [4, (o) => (le ? buf.readFloatLE(o) : buf.readFloatBE(o))],
    64: [8, (o) => (le ? buf.readDoubleLE(o) : buf.readDoubleBE(o))],
  };
  if (!types[datatype]) usage(`${file}: NIfTI datatype ${datatype} not supported`);
  const [size, read] = types[datatype];
  const n = nx * ny * nz;
  const data = new Int32Array(n);
  for (let i = 0; i < n; i++) data[i] = Math.round(read(voxOffset + i * size) * slope + inter);
  // Origin in LPS (NIfTI is RAS): sform when set, else qform's offsets.
  const sformCode = i16(254);
  const qformCode = i16(252);
  let origin = null;
  if (sformCode > 0) origin = [-f32(280 + 12), -f32(296 + 12), f32(312 + 12)];
  else if (qformCode > 0) origin = [-f32(268), -f32(272), f32(276)];
  return { shape: [nz, ny, nx], data, origin };
}

function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.toString('latin1', 1, 6) !== 'NUMPY') usage(`${file}: not a .npy file`);
  const major = buf[6];
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', start, start + hlen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  if (/'fortran_order':\s*True/.test(header)) usage(`${file}: Fortran-order .npy not supported`);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  if (shape.length !== 3) usage(`${file}: a 3-D (z,y,x) array is needed, shape ${shape}`);
  const off = start + hlen;
  const kinds = {
    '|u1': [1, (o) => buf.readUInt8(o)], '|i1': [1, (o) => buf.readInt8(o)], '|b1': [1, (o) => buf.readUInt8(o)],
    '<u2': [2, (o) => buf.readUInt16LE(o)], '<i2': [2, (o) => buf.readInt16LE(o)],
    '<u4': [4, (o) => buf.readUInt32LE(o)], '<i4': [4, (o) => buf.readInt32LE(o)],
    '<i8': [8, (o) => Number(buf.readBigInt64LE(o))], '<u8': [8, (o) => Number(buf.readBigUInt64LE(o))],
    '<f4': [4, (o) => buf.readFloatLE(o)], '<f8': [8, (o) => buf.readDoubleLE(o)],
  };
  if (!kinds[descr]) usage(`${file}: dtype ${descr} not supported`);
  const [size, read] = kinds[descr];
  const n = shape[0] * shape[1] * shape[2];
  const data = new Int32Array(n);
  for (let i = 0; i < n; i++) data[i] = Math.round(read(off + i * size));
  return { shape, data, origin: null };
}

function readMask(file) {
  if (/\.nii(\.gz)?$/i.test(file)) return readNifti(file);
  if (/\.npy$/i.test(file)) return readNpy(file);
  return usage(`${file}: the mask must be .nii, .nii.gz or .npy`);
}

// ---- the viewer's environment ----------------------------------------------------------------

const instances = new Map(); // imageId -> dcmjs-naturalized dataset

function instanceProvider(type, imageId) {
  if (type !== 'instance') return undefined;
  const base = String(imageId).split(/[?&]frame=/)[0];
  return instances.get(imageId) ?? instances.get(base);
}

async function registerFile(imageId, entry) {
  instances.set(imageId, entry.dataset);
  const url = wadouri.parseImageId(imageId).url;
  await wadouri.dataSetCacheManager.load(url, () => Promise.resolve(entry.arrayBuffer), imageId);
}

function segFrameLoader(imageId) {
  const { url, frame } = wadouri.parseImageId(imageId);
  const promise = (async () => {
    const dataSet = wadouri.dataSetCacheManager.get(url);
    if (!dataSet) throw new Error(`SEG dataset ${url} not loaded`);
    const pixelData = wadouri.getPixelData(dataSet, (frame ?? 1) - 1);
    return { imageId, getPixelData: () => pixelData, rows: dataSet.uint16('x00280010'), columns: dataSet.uint16('x00280011') };
  })();
  return { promise };
}

// ---- main ----------------------------------------------------------------------------------

async function main() {
  const args = process.argv.slice(2);
  let labelsOpt = null;
  const li = args.indexOf('--labels');
  if (li !== -1) {
    labelsOpt = (args[li + 1] || '').split(',').map(Number);
    if (!labelsOpt.length || labelsOpt.some((v) => !Number.isInteger(v) || v <= 0)) usage('--labels wants positive integers');
    args.splice(li, 2);
  }
  if (args.length !== 3) usage();
  const [seriesDir, segFile, maskFile] = args;

  metaData.addProvider(instanceProvider, 10000);
  metaData.addProvider(wadouri.metaData.metaDataProvider, 0);
  imageLoader.registerImageLoader('segframe', segFrameLoader);

  const slices = readSeries(seriesDir);
  const referencedImageIds = [];
  for (let i = 0; i < slices.length; i++) {
    const imageId = `dicomfile:${i + 1}`;
    await registerFile(imageId, slices[i]);
    referencedImageIds.push(imageId);
  }

  const seg = readDicom(segFile);
  if (!seg) usage(`${segFile} is not a DICOM Part 10 file`);
  const sopClass = seg.dataset.SOPClassUID;
  if (sopClass !== SEG_STORAGE && sopClass !== LABELMAP_SEG_STORAGE) usage(`${segFile}: SOP class ${sopClass} is not a Segmentation`);
  const segImageId = 'segframe:seg';
  await registerFile(segImageId, seg);
  const numberOfFrames = Number(seg.dataset.NumberOfFrames) || 1;
  // OHIF's frame imageIds for a dicomfile/wadouri instance: the instance id with ?frame=N.
  const frameImageIds = Array.from({ length: numberOfFrames }, (_, i) => `${segImageId}?frame=${i + 1}`);

  const parserType = sopClass === LABELMAP_SEG_STORAGE ? 'labelmap' : 'bitmap';
  const mask = readMask(maskFile);
  const first = slices[0].dataset;
  const [rows, cols] = [Number(first.Rows), Number(first.Columns)];
  const versions = ['@cornerstonejs/adapters', '@cornerstonejs/core', '@cornerstonejs/dicom-image-loader', 'dcmjs', 'dicom-parser'];
  console.log(`packages: ${versions.map((n) => `${n} ${pkgVersion(n)}`).join(', ')}; node ${process.version}`);
  console.log(`series: ${slices.length} slices of ${rows} rows x ${cols} columns; SEG: ${numberOfFrames} frames, ${seg.dataset.SegmentSequence?.length ?? 0} segments, SegmentationType ${seg.dataset.SegmentationType}`);
  console.log(`mask: ${maskFile} shape (z,y,x) ${mask.shape.join(',')}`);
  let good = true;
  const fail = (msg) => { good = false; console.log(`MISMATCH: ${msg}`); };
  if (mask.shape[0] !== slices.length || mask.shape[1] !== rows || mask.shape[2] !== cols) {
    fail(`mask shape ${mask.shape} is not the series' (${slices.length},${rows},${cols})`);
  }
  if (mask.origin) {
    const ipp = first.ImagePositionPatient.map(Number);
    const d = Math.max(...ipp.map((v, i) => Math.abs(v - mask.origin[i])));
    if (d > 1e-2) fail(`mask origin ${mask.origin.map((v) => v.toFixed(3))} is not the first sorted slice's position ${ipp} (another slice order?)`);
  }

  // 1. OHIF 3.13.2's call.
  console.log(`\n[OHIF 3.13.2] adaptersSEG.Cornerstone3D.Segmentation.createFromDicomSegImageId, parserType ${parserType}, SEG frames from dicom-image-loader wadouri.getPixelData`);
  if (!(await attempt(() => adaptersSEG.Cornerstone3D.Segmentation.createFromDicomSegImageId(referencedImageIds, segImageId, {
    metadataProvider: metaData,
    tolerance: 0.001,
    parserType,
    frameImageIds,
    concurrency: 16,
  })))) good = false;

  // 2. Cornerstone3D's buffer entry point (its own frame unpacking, dcmjs parsing).
  console.log('\n[Cornerstone3D] adaptersSEG.Cornerstone3D.Segmentation.createFromDICOMSegBuffer');
  if (!(await attempt(() => adaptersSEG.Cornerstone3D.Segmentation.createFromDICOMSegBuffer(referencedImageIds, seg.arrayBuffer, { metadataProvider: metaData, tolerance: 0.001 })))) good = false;

  console.log(good ? '\nOK: OHIF/Cornerstone3D load the SEG as the mask' : '\nFAILED');
  return good ? 0 : 1;

  async function attempt(load) {
    let result;
    try {
      result = await load();
    } catch (err) {
      console.log(`MISMATCH: the loader threw: ${err?.message ?? err}`);
      return false;
    }
    return compare(result);
  }

  function compare(result) {
    let same = true;
    const bad = (msg) => { same = false; console.log(`MISMATCH: ${msg}`); };
    if (result.overlappingSegments) bad(`the adapter found overlapping segments (${result.labelMapImages.length} labelmaps)`);
    const plane = rows * cols;
    // Stack the labelmap(s) z,y,x in referencedImageIds order (the sorted slices).
    const volume = new Int32Array(slices.length * plane);
    for (const layer of result.labelMapImages) {
      if (layer.length !== slices.length) bad(`a labelmap has ${layer.length} images for ${slices.length} slices`);
      layer.forEach((image, z) => {
        const px = image.voxelManager ? image.voxelManager.getScalarData() : image.getPixelData();
        const zi = referencedImageIds.indexOf(image.referencedImageId);
        for (let k = 0; k < plane; k++) if (px[k]) volume[(zi === -1 ? z : zi) * plane + k] = px[k];
      });
    }
    const segments = (result.segMetadata?.data ?? []).map((s, i) => (s ? { number: i, label: s.SegmentLabel } : null)).filter(Boolean);
    const numbers = segments.map((s) => s.number);
    const labelOf = (n) => (labelsOpt ? labelsOpt[n - 1] : n);
    if (labelsOpt && labelsOpt.length !== numbers.length) bad(`--labels lists ${labelsOpt.length} labels for ${numbers.length} segments`);
    const countOhif = new Map();
    for (const v of volume) if (v) countOhif.set(v, (countOhif.get(v) ?? 0) + 1);
    const countMask = new Map();
    for (const v of mask.data) if (v) countMask.set(v, (countMask.get(v) ?? 0) + 1);
    console.log('segment  label  name                          viewer voxels  mask voxels');
    for (const s of segments) {
      const lab = labelOf(s.number);
      const a = countOhif.get(s.number) ?? 0;
      const b = countMask.get(lab) ?? 0;
      console.log(`${String(s.number).padStart(7)}  ${String(lab).padStart(5)}  ${String(s.label).slice(0, 28).padEnd(28)}  ${String(a).padStart(13)}  ${String(b).padStart(11)}${a === b ? '' : '   <-- differs'}`);
    }
    for (const [v, c] of countMask) {
      if (!numbers.some((n) => labelOf(n) === v)) bad(`mask label ${v} (${c} voxels) has no segment`);
    }
    for (const [v] of countOhif) if (!numbers.includes(v)) bad(`labelmap value ${v} is not a segment number`);
    if (mask.data.length === volume.length) {
      let diff = 0;
      let firstDiff = null;
      for (let i = 0; i < volume.length; i++) {
        const want = mask.data[i];
        const got = volume[i] ? labelOf(volume[i]) : 0;
        if (want !== got) {
          diff++;
          if (!firstDiff) {
            const z = Math.floor(i / plane), y = Math.floor((i % plane) / cols), x = i % cols;
            firstDiff = `(z ${z}, y ${y}, x ${x}): viewer ${got}, mask ${want}`;
          }
        }
      }
      if (diff) bad(`${diff} of ${volume.length} voxels differ, first at ${firstDiff}`);
      else console.log(`labelmap == mask: all ${volume.length} voxels equal`);
    }
    return same;
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error('error: the OHIF SEG loader failed:', err?.stack ?? err);
    process.exit(2);
  },
);
