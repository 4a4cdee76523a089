'use strict';
// Turns a video into 3D animation files through animate3d-gateway:
// upload -> start -> watch -> download.
//
//   A3D_ADDR=127.0.0.1:50051 A3D_API_KEY=... node a3d_example.js VIDEO OUT_DIR [--formats bvh,fbx]
//
// The .proto files are loaded at run time (@grpc/proto-loader) from A3D_PROTO_DIR (default: this
// repository's proto/). Exit status: 0 the outputs are in OUT_DIR, 1 an RPC or download failed,
// 2 usage, 3 the job itself failed (FAILURE with its error code).
//
// Errors, as the gateway's README maps them:
// - RESOURCE_EXHAUSTED (a rate limit) and UNAVAILABLE (upstream or gateway trouble) are retried by
//   the channel's service config below; grpc-js waits the `grpc-retry-pushback-ms` the gateway
//   sends instead of its own backoff.
// - UNAUTHENTICATED / PERMISSION_DENIED: the key is wrong or may not write; INVALID_ARGUMENT: the
//   message names the field; NOT_FOUND: the job is not this key's team's. Not retried: retrying
//   cannot fix them.
// - A failed job is not an RPC error: its status says FAILURE with the documented error code.

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const { once } = require('events');
const { Readable } = require('stream');
const { pipeline } = require('stream/promises');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_DIR = process.env.A3D_PROTO_DIR || path.join(__dirname, '..', '..', 'proto');
const CHUNK_BYTES = 1 << 20;       // per UploadVideo message (the gateway takes up to 4 MiB)
const UPLOAD_ATTEMPTS = 5;         // our own re-sends of a whole upload (see upload())
const WATCH_RECONNECTS = 10;       // a watch stream that breaks is opened again this often at most
const UNARY_TIMEOUT_MS = 60000;    // per call, retries included
const UPLOAD_TIMEOUT_MS = 600000;
const JOB_TIMEOUT_MS = Number(process.env.A3D_JOB_TIMEOUT_S || 3600) * 1000;
const DOWNLOAD_TIMEOUT_MS = 120000; // per file

// The retry policy (gRFC A6): at most 5 attempts per call, exponential backoff with jitter unless
// the gateway sends grpc-retry-pushback-ms, which then decides the wait. A call is retried only
// until the gateway has answered with a message; StartJob is safe to retry because every start
// carries an idempotency key. UploadVideo has a config of its own without a retry policy:
// upload() re-sends the whole file itself (why: see there).
const SERVICE_CONFIG = {
	methodConfig: [{
		name: [{ service: 'animate3d.v1.Jobs' }],
		retryPolicy: {
			maxAttempts: 5,
			initialBackoff: '0.5s',
			maxBackoff: '10s',
			backoffMultiplier: 2,
			retryableStatusCodes: ['UNAVAILABLE', 'RESOURCE_EXHAUSTED'],
		},
	}, {
		name: [{ service: 'animate3d.v1.Jobs', method: 'UploadVideo' }],
	}],
};
const RETRYABLE = [grpc.status.UNAVAILABLE, grpc.status.RESOURCE_EXHAUSTED];
const EXIT_OK = 0, EXIT_RPC = 1, EXIT_USAGE = 2, EXIT_JOB = 3;

const log = (msg) => console.log(msg);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const deadline = (ms) => ({ deadline: Date.now() + ms });
const statusName = (code) =>
	Object.keys(grpc.status).find((k) => grpc.status[k] === code) || String(code);

// The delay the gateway asked for (grpc-retry-pushback-ms), or null.
function pushbackMs(err) {
	const v = err && err.metadata ? err.metadata.get('grpc-retry-pushback-ms') : [];
	const n = v.length ? Number.parseInt(String(v[0]), 10) : NaN;
	return Number.isFinite(n) ? n : null;
}

function unary(jobs, md, method, req) {
	return new Promise((resolve, reject) =>
		jobs[method](req, md, deadline(UNARY_TIMEOUT_MS),
			(err, res) => (err ? reject(err) : resolve(res))));
}

// One UploadVideo call: the file name (and size) first, then the bytes in chunks. -> the answer.
function uploadOnce(jobs, md, file) {
	let call;
	let answered = false;
	const answer = new Promise((resolve, reject) => {
		call = jobs.UploadVideo(md, deadline(UPLOAD_TIMEOUT_MS),
			(err, res) => (err ? reject(err) : resolve(res)));
	});
	answer.then(() => { answered = true; }, () => { answered = true; });
	const send = (async () => {
		call.write({ name: path.basename(file), size: fs.statSync(file).size });
		for await (const chunk of fs.createReadStream(file, { highWaterMark: CHUNK_BYTES })) {
			if (answered)	// the gateway answered early (a refusal): stop sending
				return;
			if (!call.write({ chunk }))
				await Promise.race([once(call, 'drain').catch(() => {}), answer.catch(() => {})]);
		}
		if (!answered)
			call.end();
	})();
	// A local failure (the file cannot be read) cancels the call and is the error reported.
	send.catch(() => call.cancel());
	return Promise.all([answer, send]).then(([res]) => res);
}

// -> the upload URL. A refused upload (rate limit, gateway or storage unavailable) is sent again
// from here, after the pushback the gateway asked for, not by the channel: the channel can replay
// only what it still buffers of a streaming call (grpc.per_rpc_retry_buffer_size, 256 KiB), and
// gRPC C core 1.51 (under the Python example) was seen to lose the first message in a replay
// that raced with that limit. Both examples do it the same way.
async function upload(jobs, md, file) {
	for (let attempt = 1; ; attempt++) {
		try {
			const r = await uploadOnce(jobs, md, file);
			log(`uploaded ${path.basename(file)} (${r.size} bytes)`);
			return r.url;
		} catch (e) {
			if (!RETRYABLE.includes(e.code) || attempt === UPLOAD_ATTEMPTS)
				throw e;
			const wait = pushbackMs(e) ?? Math.min(1000 * 2 ** attempt, 10000);
			log(`upload: ${statusName(e.code)} (${e.details}), ` +
			    `sending again in ${(wait / 1000).toFixed(1)} s`);
			await sleep(wait);
		}
	}
}

// StartJob with an idempotency key: a retried start never runs the job twice. -> rid.
async function start(jobs, md, uploadUrl, formats) {
	const { rid } = await unary(jobs, md, 'StartJob', {
		upload_url: uploadUrl,
		params: { formats },
		idempotency_key: 'example-' + crypto.randomUUID(),
	});
	log(`started job ${rid}`);
	return rid;
}

// WatchStatus until SUCCESS or FAILURE. -> the final status. The channel retries a watch refused
// at its start; a stream that breaks later (the gateway drains, the connection reaches its
// maximum age) is opened again here.
async function watch(jobs, md, rid) {
	const end = Date.now() + JOB_TIMEOUT_MS;
	for (let reconnects = 0; ; reconnects++) {
		if (Date.now() >= end)
			throw new Error(`job ${rid} not finished after ${JOB_TIMEOUT_MS / 1000} s`);
		const call = jobs.WatchStatus({ rids: [rid] }, md, { deadline: end });
		try {
			for await (const st of call) {
				if (Number(st.position_in_queue) > 0)
					log(`${rid} ${st.state}, position ${st.position_in_queue} in the queue`);
				else
					log(`${rid} ${st.state} ${st.step}/${st.total}`);
				if (st.state === 'SUCCESS' || st.state === 'FAILURE') {
					call.cancel();
					return st;
				}
			}
			throw new Error(`WatchStatus ended before job ${rid} finished`);
		} catch (e) {
			if (e.code === undefined || !RETRYABLE.includes(e.code) || reconnects === WATCH_RECONNECTS)
				throw e;
			const wait = pushbackMs(e) ?? 1000;
			log(`watch: ${statusName(e.code)} (${e.details}), ` +
			    `watching again in ${(wait / 1000).toFixed(1)} s`);
			await sleep(wait);
		}
	}
}

// A file name from upstream's group name or format: nothing but A-Z a-z 0-9 . _ -
function safeName(s) {
	const t = String(s).replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+|\.+$/g, '');
	return t || 'output';
}

// GetDownloadUrls, then each file from its signed URL. -> the paths written.
async function download(jobs, md, rid, outDir) {
	const r = await unary(jobs, md, 'GetDownloadUrls', { rids: [rid] });
	fs.mkdirSync(outDir, { recursive: true });
	const written = [];
	for (const link of r.links)
		for (const group of link.groups)
			for (const f of group.files) {
				const file = path.join(outDir, `${safeName(group.name)}.${safeName(f.format)}`);
				// The URL is signed: it grants access on its own, so it is never printed.
				const res = await fetch(f.url, { signal: AbortSignal.timeout(DOWNLOAD_TIMEOUT_MS) });
				if (!res.ok)
					throw new Error(`download of ${path.basename(file)}: HTTP ${res.status}`);
				await pipeline(Readable.fromWeb(res.body), fs.createWriteStream(file + '.part'));
				fs.renameSync(file + '.part', file);
				log(`downloaded ${file} (${fs.statSync(file).size} bytes)`);
				written.push(file);
			}
	if (!written.length)
		throw new Error(`job ${rid} finished without output files`);
	return written;
}

function usage(msg) {
	if (msg)
		log(msg);
	log('usage: A3D_ADDR=host:port A3D_API_KEY=key node a3d_example.js VIDEO OUT_DIR ' +
	    '[--formats bvh,fbx]');
	return EXIT_USAGE;
}

async function main(argv) {
	const pos = [];
	let formats = 'bvh,fbx';
	for (let i = 0; i < argv.length; i++) {
		if (argv[i] === '--formats' && i + 1 < argv.length)
			formats = argv[++i];
		else if (argv[i].startsWith('-'))
			return usage(`unknown option ${argv[i]}`);
		else
			pos.push(argv[i]);
	}
	if (pos.length !== 2)
		return usage();
	const [video, outDir] = pos;
	const addr = process.env.A3D_ADDR || '127.0.0.1:50051';
	const key = process.env.A3D_API_KEY;
	if (!key)
		return usage('A3D_API_KEY is not set (the gateway key of your team)');
	if (!fs.existsSync(video) || !fs.statSync(video).isFile())
		return usage(`${video}: not a file`);

	const def = protoLoader.loadSync('animate3d/v1/jobs.proto', {
		includeDirs: [PROTO_DIR],
		keepCase: true,         // field names as in the .proto: upload_url, position_in_queue
		longs: Number,
		enums: String,          // 'SUCCESS', 'JOB_ERROR_NO_CHARACTER_DETECTED'
		defaults: true,
		oneofs: true,
	});
	const v1 = grpc.loadPackageDefinition(def).animate3d.v1;
	// The job error codes by name (the enum's values are the documented codes).
	const jobErrors = Object.fromEntries(
		def['animate3d.v1.JobError'].type.value.map((e) => [e.name, e.number]));
	const jobs = new v1.Jobs(addr, grpc.credentials.createInsecure(), {
		'grpc.enable_retries': 1,
		'grpc.service_config': JSON.stringify(SERVICE_CONFIG),
	});
	const md = new grpc.Metadata();
	md.set('authorization', `Bearer ${key}`);
	try {
		const url = await upload(jobs, md, video);
		const rid = await start(jobs, md, url, formats.split(',').filter(Boolean));
		const st = await watch(jobs, md, rid);
		if (st.state === 'FAILURE') {
			const code = jobErrors[st.error_code] ?? st.error_code;
			log(`job ${rid} failed: error ${code} (${st.error_code}) ${st.error_message}`);
			return EXIT_JOB;
		}
		await download(jobs, md, rid, outDir);
		log(`done: outputs of ${rid} in ${outDir}`);
		return EXIT_OK;
	} catch (e) {
		if (e.code !== undefined && typeof e.code === 'number') {
			const hint = {
				[grpc.status.UNAUTHENTICATED]: ' (check A3D_API_KEY)',
				[grpc.status.PERMISSION_DENIED]: ' (the key needs write permission)',
				[grpc.status.UNAVAILABLE]: ' (gateway or upstream unavailable; the retries ran out)',
				[grpc.status.RESOURCE_EXHAUSTED]: ' (rate limit; the retries ran out)',
			}[e.code] || '';
			log(`error: ${statusName(e.code)}: ${e.details}${hint}`);
		} else {
			log(`error: ${e.message}`);
		}
		return EXIT_RPC;
	} finally {
		jobs.close();
	}
}

main(process.argv.slice(2)).then((rc) => { process.exitCode = rc; });
