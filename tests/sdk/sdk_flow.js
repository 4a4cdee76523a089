'use strict';
// The real Animate 3D JavaScript SDK (npm dm-animate3d-api 1.0.0) against animate3d-sim.
// Only the SDK's public API is used; only the base URL and the credentials differ from a
// production setup. One line per check, then "N passed, M failed"; exit 1 on any failure.
// Where the SDK reads a field (details.in, positionInQueue, link.mode/models, all_characters
// saved as .zip), a check fails when the simulator's shape does not give the SDK the value;
// where the SDK and the document disagree (Job.fromDict reads created_at, the document says
// ctime), the document wins and an INFO line says what the SDK saw.
// Flows: account, model upload (used in jobs), a job with callbacks, download, rerun, every
// ProcessParams option, an unfinished job, a failing job, multi-person (detection, cdsave,
// thumbnails, models with the documented string ids, all_characters zips), listing, errors.
//   A3D_SIM_URL   simulator base URL (tests/lib/with-sim exports it)
//   A3D_FIXTURE   the tiny MP4 fixture (tests/sim/fixtures/tiny.mp4)

const fs = require('fs');
const os = require('os');
const path = require('path');
const zlib = require('zlib');
const sdk = require('dm-animate3d-api');
const { Animate3DClient, ProcessParams, APIError } = sdk;

const BASE = process.env.A3D_SIM_URL;
const FIXTURE = process.env.A3D_FIXTURE || path.join(__dirname, '..', 'sim', 'fixtures', 'tiny.mp4');
const CLIENT_ID = process.env.A3D_CLIENT_ID || 'demo-client-id';
const CLIENT_SECRET = process.env.A3D_CLIENT_SECRET || 'demo-client-secret';
const REQUEST_TIMEOUT_S = 10;   // SDK per-request timeout
const JOB_TIMEOUT_S = 30;       // SDK poll timeout per job (--job-seconds 1)
const POLL_S = 0.2;
const TOTAL_TIMEOUT_MS = 240000;
const BASE58 = /^[1-9A-HJ-NP-Za-km-z]{22}$/;

let passed = 0;
let failed = 0;

function check(name, ok, detail) {
	if (ok) {
		passed++;
		console.log(`PASS ${name}`);
	} else {
		failed++;
		console.log(`FAIL ${name}${detail !== undefined ? ': ' + detail : ''}`);
	}
	return ok;
}

function finish() {
	console.log(`${passed} passed, ${failed} failed`);
	process.exit(failed === 0 && passed > 0 ? 0 : 1);
}

// Runs one step; an exception is one failed check, and later steps still run.
async function step(name, fn) {
	try {
		return await fn();
	} catch (e) {
		const status = e && e.status_code !== undefined ? ` (status ${e.status_code})` : '';
		check(name, false, `${e && e.name}: ${e && e.message}${status}`);
		return undefined;
	}
}

// CRC-32 bit by bit (the zip and PNG checksum), independent of the simulator's code.
function crc32(buf) {
	let c = 0xffffffff;
	for (const b of buf) {
		c ^= b;
		for (let k = 0; k < 8; k++)
			c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
	}
	return (c ^ 0xffffffff) >>> 0;
}

// The members of a zip archive read through its central directory, CRCs checked; throws when
// buf is not one. Only stored members (the simulator's) are read.
function zipMembers(buf) {
	const end = buf.length - 22;
	if (end < 0 || buf.readUInt32LE(end) !== 0x06054b50)
		throw new Error(`not a zip (${buf.length} bytes, starts ${buf.subarray(0, 4).toString('hex')})`);
	const n = buf.readUInt16LE(end + 10);
	let cd = buf.readUInt32LE(end + 16);
	const out = [];
	for (let i = 0; i < n; i++) {
		if (buf.readUInt32LE(cd) !== 0x02014b50)
			throw new Error(`central directory entry ${i}`);
		const nl = buf.readUInt16LE(cd + 28), size = buf.readUInt32LE(cd + 24), off = buf.readUInt32LE(cd + 42);
		const name = buf.toString('latin1', cd + 46, cd + 46 + nl);
		if (buf.readUInt16LE(cd + 10) !== 0 || buf.readUInt32LE(off) !== 0x04034b50)
			throw new Error(`member ${name}`);
		const start = off + 30 + buf.readUInt16LE(off + 26) + buf.readUInt16LE(off + 28);
		const data = buf.subarray(start, start + size);
		if (crc32(data) !== buf.readUInt32LE(cd + 16))
			throw new Error(`member ${name}: bad CRC`);
		out.push({ name, data });
		cd += 46 + nl + buf.readUInt16LE(cd + 30) + buf.readUInt16LE(cd + 32);
	}
	return out;
}

// {w, h} of a PNG whose chunks carry right CRCs and whose image data inflates to the size
// IHDR promises (8-bit RGB: h rows of 1 + 3w bytes); throws otherwise.
function pngInfo(buf) {
	if (!buf.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])))
		throw new Error('no PNG signature');
	let off = 8, w = 0, h = 0;
	const idat = [];
	while (off + 12 <= buf.length) {
		const n = buf.readUInt32BE(off), type = buf.toString('latin1', off + 4, off + 8);
		if (crc32(buf.subarray(off + 4, off + 8 + n)) !== buf.readUInt32BE(off + 8 + n))
			throw new Error(`chunk ${type}: bad CRC`);
		if (type === 'IHDR') {
			w = buf.readUInt32BE(off + 8);
			h = buf.readUInt32BE(off + 12);
		} else if (type === 'IDAT') {
			idat.push(buf.subarray(off + 8, off + 8 + n));
		}
		off += 12 + n;
		if (type === 'IEND')
			break;
	}
	const raw = zlib.inflateSync(Buffer.concat(idat));
	if (!w || !h || raw.length !== h * (1 + 3 * w))
		throw new Error(`image data ${raw.length} bytes for ${w}x${h}`);
	return { w, h };
}

// Collects what the SDK hands to the callbacks of one job.
function callbacks() {
	const c = { progress: [], results: [] };
	c.on_progress = (d) => { c.progress.push(d); };
	c.on_result = (d) => { c.results.push(d); };
	return c;
}

async function main() {
	if (!BASE) {
		console.log('A3D_SIM_URL is not set: run through tests/lib/with-sim');
		failed++;
		return;
	}
	if (!check('fixture exists', fs.existsSync(FIXTURE), FIXTURE))
		return;
	const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'a3d-sdk-'));
	const client = new Animate3DClient(BASE, CLIENT_ID, CLIENT_SECRET, REQUEST_TIMEOUT_S);
	try {
		await flow(client, tmp);
	} finally {
		await step('close', async () => { await client.close(); check('close', true); });
		fs.rmSync(tmp, { recursive: true, force: true });
	}
}

async function waitDone(client, rid) {
	const t0 = Date.now();
	for (;;) {
		const st = await client.get_job_status(rid);
		if (st.status === 'SUCCESS' || st.status === 'FAILURE' || Date.now() - t0 > JOB_TIMEOUT_S * 1000)
			return st;
		await new Promise((r) => setTimeout(r, POLL_S * 1000));
	}
}

// The files download_job saved for rid under dir: name -> Buffer.
function saved(dir, rid) {
	const d = path.join(dir, rid);
	const out = {};
	for (const f of fs.existsSync(d) ? fs.readdirSync(d) : [])
		out[f] = fs.readFileSync(path.join(d, f));
	return out;
}

async function flow(client, tmp) {
	// --- account
	const credits0 = await step('get_credit_balance', async () => {
		const c = await client.get_credit_balance();
		check('get_credit_balance is a positive integer', Number.isInteger(c) && c > 0, c);
		return c;
	});

	// --- character models
	const stock = await step('list_character_models', async () => {
		const all = await client.list_character_models();
		check('list_character_models returns models', Array.isArray(all) && all.length > 0,
			JSON.stringify(all));
		check('every model has an id and a name',
			all.every((m) => typeof m.id === 'string' && m.id && typeof m.name === 'string'),
			JSON.stringify(all.slice(0, 3)));
		const platforms = new Set(all.map((m) => m.platform));
		check('stock models carry platform deepmotion and roblox',
			platforms.has('deepmotion') && platforms.has('roblox'), [...platforms].join(','));
		return all;
	}) || [];
	const stockIds = stock.filter((m) => m.platform === 'deepmotion').map((m) => m.id);

	// --- model upload (resumable: POST x-goog-resumable: start, then PUT); kept for the jobs
	const hero = await step('upload_character_model', async () => {
		const fbx = path.join(tmp, 'sdk_hero.fbx');
		fs.writeFileSync(fbx, Buffer.concat([Buffer.from('Kaydara FBX Binary  \0'), Buffer.alloc(256, 7)]));
		const id = await client.upload_character_model(fbx, 'sdk_hero', true);
		check('upload_character_model returns a 22-char base58 id', BASE58.test(id || ''), id);
		const custom = await client.list_character_models(undefined, undefined, true);
		const mine = custom.find((m) => m.id === id);
		check('list_character_models(only_custom) shows the uploaded model', !!mine,
			JSON.stringify(custom));
		check('uploaded model keeps its name', mine && mine.name === 'sdk_hero', mine && mine.name);
		check('uploaded model has a thumbnail (createThumb)', mine && typeof mine.thumb === 'string' &&
			mine.thumb.startsWith('http'), mine && mine.thumb);
		check('only_custom lists no stock model',
			custom.every((m) => m.platform === undefined || m.platform === 'custom' || m.id === id),
			JSON.stringify(custom));
		const found = await client.list_character_models(undefined, 'sdk_he', true);
		check('list_character_models(search_token) finds it', found.some((m) => m.id === id),
			JSON.stringify(found));
		const byId = await client.list_character_models(id);
		check('list_character_models(model_id) finds it', byId.some((m) => m.id === id),
			JSON.stringify(byId));
		return id;
	});

	// --- a job: upload (resumable=0 + PUT), process, poll with callbacks
	const cb = callbacks();
	const params = new ProcessParams({ formats: ['bvh', 'fbx', 'mp4'] });
	const rid = await step('start_new_job', async () => {
		const r = await client.start_new_job(FIXTURE, params, 'sdk_walk.mp4', cb.on_result,
			cb.on_progress, POLL_S, true, JOB_TIMEOUT_S);
		check('start_new_job returns a 22-char base58 rid', BASE58.test(r || ''), r);
		check('progress callback called', cb.progress.length > 0, cb.progress.length);
		check('progress callback data has rid and numbers',
			cb.progress.every((p) => p.rid === r && Number.isFinite(p.progress_percent) &&
				Number.isFinite(p.position_in_queue)), JSON.stringify(cb.progress.slice(0, 3)));
		check('result callback called once', cb.results.length === 1, cb.results.length);
		const res = cb.results[0] || {};
		check('result callback reports success', !!res.result && !res.error, JSON.stringify(res));
		check('result output is set (details.out)', !!(res.result && res.result.output),
			JSON.stringify(res));
		// The SDK reads details.in (v1.5.8's "in"); a capital "In" would leave this empty.
		check('result input is the uploaded file (details.in)',
			!!res.result && Array.isArray(res.result.input) && res.result.input.length === 1 &&
			res.result.input[0] === 'sdk_walk.mp4', JSON.stringify(res.result && res.result.input));
		console.log(`INFO progress callbacks with a queue position (the SDK reads positionInQueue ` +
			`beside details): ${cb.progress.filter((p) => p.position_in_queue).length}` +
			` of ${cb.progress.length}`);
		return r;
	});

	if (rid) {
		await step('get_job_status', async () => {
			const st = await client.get_job_status(rid);
			check('get_job_status is SUCCESS', st.status === 'SUCCESS', JSON.stringify(st));
			check('get_job_status details.input_file is the input (details.in)',
				st.details && st.details.input_file === 'sdk_walk.mp4', JSON.stringify(st.details));
		});
		await step('download_job', async () => {
			const link = await client.download_job(rid, tmp);
			check('download_job returns the rid', link.rid === rid, link.rid);
			check('download_job has url groups', Array.isArray(link.urls) && link.urls.length > 0,
				JSON.stringify(link));
			check('download_job mode is 0 (single person)', link.mode === 0, JSON.stringify(link.mode));
			check('download_job models is one person "001" without a model',
				Array.isArray(link.models) && link.models.length === 1 && link.models[0].trackingId === '001' &&
				link.models[0].modelId === null, JSON.stringify(link.models));
			const files = saved(tmp, rid);
			const names = Object.keys(files);
			const exts = new Set(names.map((f) => f.split('.').slice(1).join('.')));
			for (const ext of ['bvh', 'fbx', 'mp4'])
				check(`downloaded a .${ext} file`, [...exts].some((e) => e === ext || e.startsWith(ext + '.')),
					names.join(','));
			const bvh = names.find((f) => f.endsWith('.bvh'));
			const text = bvh ? files[bvh].toString('latin1') : '';
			check('the .bvh starts with HIERARCHY', text.startsWith('HIERARCHY'), text.slice(0, 40));
			check('the .bvh has a MOTION section', text.includes('MOTION'), bvh);
			check('no downloaded file is empty', names.length > 0 && names.every((f) => files[f].length > 0),
				names.join(','));
			// the official demo saves FBX downloads as .fbx.zip: they are archives
			const fbx = names.find((f) => f.endsWith('.fbx'));
			let members = [];
			try {
				members = zipMembers(files[fbx]);
			} catch (e) {
				check('the .fbx download is a zip archive', false, e.message);
			}
			if (members.length)
				check('the .fbx zip holds <item>.fbx, an FBX', members.length === 1 &&
					members[0].name === fbx && members[0].data.subarray(0, 18).toString() === 'Kaydara FBX Binary',
					members.map((m) => m.name).join(','));
		});
		await step('rerun_job', async () => {
			const c2 = callbacks();
			const r2 = await client.rerun_job(rid, new ProcessParams({ formats: ['bvh'] }), c2.on_result,
				c2.on_progress, POLL_S, true, JOB_TIMEOUT_S);
			check('rerun_job returns a new rid', BASE58.test(r2 || '') && r2 !== rid, r2);
			check('rerun_job result is success', c2.results.length === 1 && !!c2.results[0].result,
				JSON.stringify(c2.results));
		});
	}

	// --- the uploaded model animates a job
	if (hero) {
		await step('start_new_job with the uploaded model', async () => {
			const c = callbacks();
			const r = await client.start_new_job(FIXTURE, new ProcessParams({ formats: ['bvh'], model_id: hero }),
				'sdk_custom.mp4', c.on_result, c.on_progress, POLL_S, true, JOB_TIMEOUT_S);
			check('a job with the uploaded model succeeds', c.results.length === 1 && !!c.results[0].result,
				JSON.stringify(c.results));
			const link = await client.download_job(r);
			check('its download item is named after the model', link.urls.some((g) => g.name === 'sdk_hero'),
				JSON.stringify(link.urls.map((g) => g.name)));
			check('its models name the uploaded model', Array.isArray(link.models) &&
				link.models.length === 1 && link.models[0].modelId === hero, JSON.stringify(link.models));
		});
	}

	// --- every ProcessParams option the SDK can send is accepted by /process
	await step('start_new_job with every ProcessParams option', async () => {
		const full = new ProcessParams({
			formats: ['bvh', 'fbx', 'mp4', 'glb'], model_id: stockIds[0],
			track_face: 1, track_hand: 1, sim: 1, foot_locking_mode: 'auto',
			video_speed_multiplier: 2.0, pose_filtering_strength: 0.5, upper_body_only: false,
			root_at_origin: false, trim: [0.5, 1.5], crop: [0.1, 0.1, 0.9, 0.9], render_sbs: 0,
			render_bg_color: [0, 177, 64, 0], render_backdrop: 'studio', render_shadow: 1,
			render_include_audio: 1, render_cam_mode: 0,
		});
		const r = await client.start_new_job(FIXTURE, full, 'sdk_full.mp4', undefined, undefined,
			POLL_S, false);
		check('every ProcessParams option accepted', BASE58.test(r || ''), r);
	});

	// --- an unfinished job: PROGRESS, and no download yet
	await step('unfinished job', async () => {
		const r = await client.start_new_job(FIXTURE, new ProcessParams({ formats: ['bvh'] }),
			'sdk_unfinished.mp4', undefined, undefined, POLL_S, false);
		const st = await client.get_job_status(r);
		check('an unfinished job is PROGRESS', st.status === 'PROGRESS', JSON.stringify(st));
		check('an unfinished job has numeric step/total or a queue position',
			(st.details && Number.isFinite(st.details.step) && Number.isFinite(st.details.total)) ||
			Number.isInteger(st.position_in_queue), JSON.stringify(st));
		let err;
		try {
			await client.download_job(r);
		} catch (e) {
			err = e;
		}
		// The document's link for an unfinished job is just {rid}; the SDK cannot read it.
		check('download_job of an unfinished job fails', !!err, 'no error');
		console.log(`INFO download_job(unfinished) raised ${err && err.name}: ${err && err.message}`);
		const done = await waitDone(client, r);
		check('the unfinished job then succeeds', done.status === 'SUCCESS', JSON.stringify(done));
	});

	// --- a failing job: the hook in the file name
	const failRid = await step('failing job', async () => {
		const c3 = callbacks();
		const r = await client.start_new_job(FIXTURE, new ProcessParams({ formats: ['bvh'] }),
			'sdk-fail-513.mp4', c3.on_result, c3.on_progress, POLL_S, true, JOB_TIMEOUT_S);
		const res = c3.results[0] || {};
		check('failing job: result callback has an error', c3.results.length === 1 && !!res.error &&
			!res.result, JSON.stringify(c3.results));
		const e = res.error || {};
		check('failing job: error carries code 513',
			String(e.code).includes('513') || String(e.message).includes('513'), JSON.stringify(e));
		check('failing job: exc_type is the error code field', e.code === 'ProcessingError', JSON.stringify(e));
		const st = await client.get_job_status(r);
		check('failing job: get_job_status is FAILURE with exc_message',
			st.status === 'FAILURE' && st.details && /513/.test(st.details.exc_message || ''), JSON.stringify(st));
		let err;
		try {
			await client.download_job(r);
		} catch (x) {
			err = x;
		}
		check('download_job of a failed job fails (its link is just {rid})', !!err, 'no error');
		return r;
	});

	// --- multi-person: detection, then models with the document's string ids
	const mpDir = path.join(tmp, 'mp');
	const mpRid = await step('prepare_multi_person_job', async () => {
		const c4 = callbacks();
		const r = await client.prepare_multi_person_job(FIXTURE, 'sdk-persons-3.mp4', c4.on_result,
			c4.on_progress, POLL_S, true, JOB_TIMEOUT_S);
		check('prepare_multi_person_job returns a rid', BASE58.test(r || ''), r);
		check('prepare_multi_person_job succeeds', c4.results.length === 1 && !!c4.results[0].result,
			JSON.stringify(c4.results));
		return r;
	});
	let ids = [];
	if (mpRid) {
		await step('download the detection', async () => {
			const link = await client.download_job(mpRid, mpDir);
			check('a detection is mode 1 with no models yet', link.mode === 1 && Array.isArray(link.models) &&
				link.models.length === 0, JSON.stringify([link.mode, link.models]));
			const files = saved(mpDir, mpRid);
			const cd = files['characters_detection_result.cdsave'];
			check('the detection saved characters_detection_result.cdsave', !!cd, Object.keys(files).join(','));
			const json = cd ? JSON.parse(cd.toString()) : {};
			// as the official demo reads it: frames of persons with an id
			const found = new Set();
			for (const frame of json.detectionResults || [])
				for (const person of frame)
					found.add(person.id);
			ids = [...found].sort((x, y) => x - y);
			check('the cdsave names the 3 detected persons', ids.join(',') === '1,2,3', ids.join(','));
			for (const id of ids) {
				const name = `thumbnail_character_${String(id).padStart(3, '0')}.png`;
				let info;
				try {
					info = files[name] ? pngInfo(files[name]) : undefined;
				} catch (e) {
					info = undefined;
					console.log(`INFO ${name}: ${e.message}`);
				}
				check(`${name} is a real PNG`, !!info, info ? `${info.w}x${info.h}` : 'missing or broken');
			}
		});
		await step('start_multi_person_job', async () => {
			// v2.0: models=[{trackingId:'001', modelId:'...'}]: zero-padded string ids
			const models = [{ trackingId: '001', modelId: stockIds[0] },
				{ trackingId: '003', modelId: hero || stockIds[1] || stockIds[0] }];
			const c5 = callbacks();
			const r = await client.start_multi_person_job(mpRid, models,
				new ProcessParams({ formats: ['bvh', 'fbx'] }), c5.on_result, c5.on_progress, POLL_S,
				true, JOB_TIMEOUT_S);
			check('start_multi_person_job returns the same rid', r === mpRid, `${r} vs ${mpRid}`);
			check('start_multi_person_job succeeds', c5.results.length === 1 && !!c5.results[0].result,
				JSON.stringify(c5.results));
			const link = await client.download_job(mpRid, path.join(mpDir, 'anim'));
			check('the multi-person download is mode 1', link.mode === 1, JSON.stringify(link.mode));
			check('its models are the persons asked for, ids as strings',
				Array.isArray(link.models) && link.models.map((m) => m.trackingId).join(',') === '001,003' &&
				link.models[0].modelId === models[0].modelId && link.models[1].modelId === models[1].modelId,
				JSON.stringify(link.models));
			const files = saved(path.join(mpDir, 'anim'), mpRid);
			const names = Object.keys(files);
			for (const ext of ['bvh', 'fbx']) {
				const zipName = `all_characters.${ext}.zip`;
				let members = [];
				try {
					members = files[zipName] ? zipMembers(files[zipName]) : [];
				} catch (e) {
					console.log(`INFO ${zipName}: ${e.message}`);
				}
				check(`${zipName} is a zip with a member per tracked person`,
					members.length === 2 && members[0].name.endsWith(`_001.${ext}`) &&
					members[1].name.endsWith(`_003.${ext}`), members.map((m) => m.name).join(',') ||
					names.join(','));
			}
			check('one .bvh per tracked person (suffixed _NNN)',
				names.some((f) => f.endsWith('_001.bvh')) && names.some((f) => f.endsWith('_003.bvh')),
				names.join(','));
		});
	}

	// --- listing
	await step('list_jobs', async () => {
		const all = await client.list_jobs();
		check('list_jobs() includes the job', !!rid && all.some((j) => j.rid === rid),
			`${all.length} jobs`);
		const ok = await client.list_jobs(['SUCCESS']);
		check('list_jobs([SUCCESS]) only SUCCESS', ok.length > 0 && ok.every((j) => j.status === 'SUCCESS'),
			JSON.stringify(ok.map((j) => j.status)));
		check('list_jobs([SUCCESS]) includes the job', !!rid && ok.some((j) => j.rid === rid));
		const bad = await client.list_jobs(['FAILURE']);
		check('list_jobs([FAILURE]) includes the failed job', !!failRid && bad.some((j) => j.rid === failRid),
			JSON.stringify(bad.map((j) => j.rid)));
		const both = await client.list_jobs(['SUCCESS', 'FAILURE']);
		check('list_jobs([SUCCESS, FAILURE]) has both jobs and nothing else',
			!!rid && !!failRid && both.some((j) => j.rid === rid) && both.some((j) => j.rid === failRid) &&
			both.every((j) => j.status === 'SUCCESS' || j.status === 'FAILURE'),
			JSON.stringify(both.map((j) => [j.rid, j.status])));
		const starting = await client.list_jobs(['STARTING']);
		check('list_jobs([STARTING]) is accepted', Array.isArray(starting), JSON.stringify(starting));
		// The SDK's Job reads created_at/updated_at/name; the document's list has ctime/mtime/fileName.
		const j = all.find((x) => x.rid === rid) || {};
		console.log(`INFO list_jobs entry as the SDK reads it: ${JSON.stringify(j)}`);
	});

	// --- errors map to the SDK's exceptions
	await step('wrong secret', async () => {
		const bad = new Animate3DClient(BASE, CLIENT_ID, 'not-the-secret', REQUEST_TIMEOUT_S);
		try {
			await bad.get_credit_balance();
			check('a wrong secret raises AuthenticationError', false, 'no error');
		} catch (e) {
			check('a wrong secret raises AuthenticationError', e instanceof sdk.AuthenticationError,
				`${e.name}: ${e.message}`);
		} finally {
			await bad.close();
		}
	});
	await step('unknown rid', async () => {
		try {
			await client.get_job_status('5Hn9mDRFqHUxd2KqG6QJsa');
			check('get_job_status(unknown) raises APIError 404', false, 'no error');
		} catch (e) {
			check('get_job_status(unknown) raises APIError 404', e instanceof APIError && e.status_code === 404,
				`${e.name} ${e.status_code} ${e.message}`);
		}
	});

	await step('credits after jobs', async () => {
		const c = await client.get_credit_balance();
		check('credits went down after the jobs', credits0 !== undefined && c < credits0, `${credits0} -> ${c}`);
	});

	if (hero) {
		await step('delete_character_model', async () => {
			const n = await client.delete_character_model(hero);
			check('delete_character_model returns 1', n === 1, n);
			const after = await client.list_character_models(undefined, undefined, true);
			check('deleted model is gone', !after.some((m) => m.id === hero), JSON.stringify(after));
		});
	}
}

const guard = setTimeout(() => {
	console.log(`FAIL overall time limit of ${TOTAL_TIMEOUT_MS / 1000} s`);
	failed++;
	finish();
}, TOTAL_TIMEOUT_MS);

main().catch((e) => {
	check('unexpected error', false, e && e.stack);
}).finally(() => {
	clearTimeout(guard);
	finish();
});
