'use strict';
// The real Animate 3D JavaScript SDK (npm dm-animate3d-api 1.0.0) against animate3d-sim.
// Only the SDK's public API is used; only the base URL and the credentials differ from a
// production setup. One line per check, then "N passed, M failed"; exit 1 on any failure.
//   A3D_SIM_URL   simulator base URL (tests/lib/with-sim exports it)
//   A3D_FIXTURE   the tiny MP4 fixture (tests/sim/fixtures/tiny.mp4)

const fs = require('fs');
const os = require('os');
const path = require('path');
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
	});

	await step('upload_character_model', async () => {
		const fbx = path.join(tmp, 'sdk_hero.fbx');
		fs.writeFileSync(fbx, Buffer.concat([Buffer.from('Kaydara FBX Binary  \0'), Buffer.alloc(256, 7)]));
		const id = await client.upload_character_model(fbx, 'sdk_hero', true);
		check('upload_character_model returns a 22-char base58 id', BASE58.test(id || ''), id);
		const custom = await client.list_character_models(undefined, undefined, true);
		const mine = custom.find((m) => m.id === id);
		check('list_character_models(only_custom) shows the uploaded model', !!mine,
			JSON.stringify(custom));
		check('uploaded model keeps its name', mine && mine.name === 'sdk_hero', mine && mine.name);
		check('only_custom lists no stock model',
			custom.every((m) => m.platform === undefined || m.platform === 'custom' || m.id === id),
			JSON.stringify(custom));
		const found = await client.list_character_models(undefined, 'sdk_he', true);
		check('list_character_models(search_token) finds it', found.some((m) => m.id === id),
			JSON.stringify(found));
		const byId = await client.list_character_models(id);
		check('list_character_models(model_id) finds it', byId.some((m) => m.id === id),
			JSON.stringify(byId));
		const n = await client.delete_character_model(id);
		check('delete_character_model returns 1', n === 1, n);
		const after = await client.list_character_models(undefined, undefined, true);
		check('deleted model is gone', !after.some((m) => m.id === id), JSON.stringify(after));
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
		// Not checks: where the SDK and docs/upstream-api.md disagree on field names, say what
		// the SDK saw, so a change on either side shows up in the log.
		console.log(`INFO result.input as the SDK reads it (details.in; the doc says "In"): ` +
			JSON.stringify(res.result && res.result.input));
		console.log(`INFO progress callbacks with a queue position (the SDK reads positionInQueue ` +
			`beside details): ${cb.progress.filter((p) => p.position_in_queue).length}` +
			` of ${cb.progress.length}`);
		return r;
	});

	if (rid) {
		await step('get_job_status', async () => {
			const st = await client.get_job_status(rid);
			check('get_job_status is SUCCESS', st.status === 'SUCCESS', JSON.stringify(st));
		});
		await step('download_job', async () => {
			const link = await client.download_job(rid, tmp);
			check('download_job returns the rid', link.rid === rid, link.rid);
			check('download_job has url groups', Array.isArray(link.urls) && link.urls.length > 0,
				JSON.stringify(link));
			const dir = path.join(tmp, rid);
			const files = fs.existsSync(dir) ? fs.readdirSync(dir) : [];
			const exts = new Set(files.map((f) => f.split('.').slice(1).join('.')));
			for (const ext of ['bvh', 'fbx', 'mp4'])
				check(`downloaded a .${ext} file`, [...exts].some((e) => e === ext || e.startsWith(ext + '.')),
					files.join(','));
			const bvh = files.find((f) => f.endsWith('.bvh'));
			const text = bvh ? fs.readFileSync(path.join(dir, bvh), 'latin1') : '';
			check('the .bvh starts with HIERARCHY', text.startsWith('HIERARCHY'), text.slice(0, 40));
			check('the .bvh has a MOTION section', text.includes('MOTION'), bvh);
			check('no downloaded file is empty',
				files.length > 0 && files.every((f) => fs.statSync(path.join(dir, f)).size > 0),
				files.join(','));
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

	// --- every ProcessParams option the SDK can send is accepted by /process
	await step('start_new_job with every ProcessParams option', async () => {
		const model = stock && stock.find((m) => m.platform === 'deepmotion');
		const full = new ProcessParams({
			formats: ['bvh', 'fbx', 'mp4', 'glb'], model_id: model ? model.id : undefined,
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
		return r;
	});

	// --- multi-person
	const mpRid = await step('prepare_multi_person_job', async () => {
		const c4 = callbacks();
		const r = await client.prepare_multi_person_job(FIXTURE, 'sdk-persons-2.mp4', c4.on_result,
			c4.on_progress, POLL_S, true, JOB_TIMEOUT_S);
		check('prepare_multi_person_job returns a rid', BASE58.test(r || ''), r);
		check('prepare_multi_person_job succeeds', c4.results.length === 1 && !!c4.results[0].result,
			JSON.stringify(c4.results));
		return r;
	});
	if (mpRid) {
		await step('start_multi_person_job', async () => {
			const ids = (stock || []).filter((m) => m.platform === 'deepmotion').map((m) => m.id);
			const models = [{ trackingId: 1, modelId: ids[0] }, { trackingId: 2, modelId: ids[1] || ids[0] }];
			const c5 = callbacks();
			const r = await client.start_multi_person_job(mpRid, models,
				new ProcessParams({ formats: ['bvh', 'fbx'] }), c5.on_result, c5.on_progress, POLL_S,
				true, JOB_TIMEOUT_S);
			check('start_multi_person_job returns the same rid', r === mpRid, `${r} vs ${mpRid}`);
			check('start_multi_person_job succeeds', c5.results.length === 1 && !!c5.results[0].result,
				JSON.stringify(c5.results));
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
