#!/usr/bin/env node
// Downloads every file of a Hugging Face repo with the official
// @huggingface/hub client and prints {"path": "sha256", ...} on stdout.
//
//   HF_ENDPOINT=http://127.0.0.1:8090 [HF_TOKEN=hf_…] node hub-download.mjs org/name [revision]
//
// It exercises two code paths of the library against HF_ENDPOINT:
//   1. listFiles (tree API, following Link: rel="next" pages) + downloadFile
//      (resolve with a Range probe, LFS redirect to another host, full GET);
//   2. snapshotDownload into a temporary cache dir (model info → sha, tree at
//      that commit, paths-info, resolve by commit, HF cache layout),
// and fails (exit 1) if they disagree with each other or with the LFS oids.
// Used by internal/mirror TestHuggingFaceJSClient.

import { downloadFile, listFiles, snapshotDownload } from "@huggingface/hub";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

// downloadFileToCacheDir logs progress with console.debug, which goes to
// stdout: keep stdout for the result.
console.debug = (...args) => console.error(...args);

const hubUrl = process.env.HF_ENDPOINT;
const accessToken = process.env.HF_TOKEN || undefined;
const [repo, revision = "main"] = process.argv.slice(2);
if (!hubUrl || !repo) {
	console.error("usage: HF_ENDPOINT=http://host:port [HF_TOKEN=…] node hub-download.mjs org/name [revision]");
	process.exit(2);
}

const sha256 = (buf) => createHash("sha256").update(buf).digest("hex");

async function main() {
	const entries = [];
	for await (const entry of listFiles({ repo, revision, recursive: true, hubUrl, accessToken })) {
		if (entry.type === "file") entries.push(entry);
	}

	const files = {};
	for (const entry of entries) {
		const blob = await downloadFile({ repo, revision, path: entry.path, hubUrl, accessToken });
		if (!blob) throw new Error(`${entry.path}: listed but downloadFile found nothing`);
		const hash = createHash("sha256");
		let size = 0;
		for await (const chunk of blob.stream()) {
			hash.update(chunk);
			size += chunk.length;
		}
		const digest = hash.digest("hex");
		if (size !== entry.size) throw new Error(`${entry.path}: downloaded ${size} bytes, tree says ${entry.size}`);
		if (entry.lfs && entry.lfs.oid !== digest) throw new Error(`${entry.path}: sha256 ${digest}, tree lfs.oid ${entry.lfs.oid}`);
		files[entry.path] = digest;
	}

	const cacheDir = await mkdtemp(join(tmpdir(), "citadel-hub-cache-"));
	try {
		const snapshot = await snapshotDownload({ repo, revision, hubUrl, accessToken, cacheDir });
		for (const [path, digest] of Object.entries(files)) {
			const got = sha256(await readFile(join(snapshot, path)));
			if (got !== digest) throw new Error(`${path}: snapshotDownload gave sha256 ${got}, downloadFile ${digest}`);
		}
	} finally {
		await rm(cacheDir, { recursive: true, force: true });
	}

	process.stdout.write(JSON.stringify(files) + "\n");
}

main().catch((err) => {
	console.error(`hub-download: ${err.message ?? err}`);
	process.exit(1);
});
