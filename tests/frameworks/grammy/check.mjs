// grammY (npm, pinned in package.json) runs its standard long-polling loop
// against floodgate-sim botapi, unmodified: bot.start() (getMe, deleteWebhook,
// getUpdates long polling), handlers, uploads as attach://, downloads by the
// file URL, callback queries, and the errors and 429s it would get from Telegram.
//
// usage: node check.mjs <path to floodgate-sim>
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync, readFileSync, existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Bot, GrammyError, InlineKeyboard, InputFile } from "grammy";

const ALPHA = "520001:AAgrammy-alpha-token-for-the-simulator";
const BETA = "520002:AAgrammy-beta-token-for-the-simulator";
const PHOTO = Buffer.alloc(10240, 0).map((_, i) => i % 256);
const NOTES = Buffer.from("naïve notes\n".repeat(100));

const scenario = {
  bots: [
    // Alpha does the ordinary bot's work without per-chat limits; Beta keeps Telegram's.
    { token: ALPHA, username: "alpha_grammy_bot", limits: { per_chat: "off" } },
    { token: BETA, username: "beta_grammy_bot" },
  ],
  open_world: false,
  users: [
    { id: 42, first_name: "Ann", username: "ann", started: ["alpha_grammy_bot", "beta_grammy_bot"] },
    { id: 43, first_name: "Bob" },
    { id: 44, first_name: "Cid", started: ["alpha_grammy_bot"], blocked: ["alpha_grammy_bot"] },
  ],
  groups: [{ id: -5, type: "group", title: "Old", members: ["alpha_grammy_bot"], migrated_to: -1000000000005 }],
  updates: [
    { bot: "alpha_grammy_bot", message: { chat_id: 42, text: "/start" } },
    { bot: "alpha_grammy_bot", callback_query: { from: 42, data: "ok" } },
  ],
};

let passed = 0;
const failures = [];
function check(name, condition, detail = "") {
  if (condition) passed++;
  else failures.push(`${name} ${detail}`.trim());
}
async function expectError(name, call, code, text) {
  try {
    await call();
    check(name, false, "(no error)");
  } catch (e) {
    const ok = e instanceof GrammyError && e.error_code === code && e.description.includes(text);
    check(name, ok, `(got ${e instanceof GrammyError ? `${e.error_code} ${e.description}` : e})`);
    return e;
  }
}

// floodgate-sim on a free port, for the length of the check.
function startSimulator(binary) {
  const folder = mkdtempSync(join(tmpdir(), "floodgate-sim-"));
  const scenarioPath = join(folder, "scenario.json");
  const portPath = join(folder, "port");
  writeFileSync(scenarioPath, JSON.stringify(scenario));
  const child = spawn(binary, ["botapi", "--plain", "--scenario", scenarioPath, "--port-out", portPath], {
    stdio: ["ignore", "inherit", "inherit"],
  });
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const poll = setInterval(() => {
      if (child.exitCode !== null) {
        clearInterval(poll);
        reject(new Error(`floodgate-sim exited with ${child.exitCode}`));
      } else if (existsSync(portPath)) {
        clearInterval(poll);
        const port = Number(readFileSync(portPath, "utf8"));
        resolve({
          url: `http://127.0.0.1:${port}`,
          stop: () =>
            new Promise((done) => {
              child.on("exit", () => {
                rmSync(folder, { recursive: true, force: true });
                done();
              });
              child.kill("SIGTERM");
            }),
        });
      } else if (Date.now() - started > 20000) {
        clearInterval(poll);
        child.kill("SIGKILL");
        reject(new Error("floodgate-sim did not start listening"));
      }
    }, 20);
  });
}

async function onStart(ctx, apiRoot) {
  const chatId = ctx.chat.id;
  check("getMe", ctx.me.username === "alpha_grammy_bot", `(got ${ctx.me.username})`);
  check("setMyCommands", (await ctx.api.setMyCommands([{ command: "start", description: "say hello" }])) === true);
  check("sendChatAction", (await ctx.replyWithChatAction("typing")) === true);
  const hello = await ctx.reply("hello *Ann*", {
    parse_mode: "MarkdownV2",
    reply_markup: new InlineKeyboard().text("ok", "ok"),
  });
  check("sendMessage with MarkdownV2", hello.text === "hello Ann", `(got ${hello.text})`);

  // Uploads: grammY sends files as multipart parts named by attach://.
  const photo = await ctx.replyWithPhoto(new InputFile(PHOTO, "pic.jpg"), { caption: "a picture" });
  const photoFile = await ctx.api.getFile(photo.photo.at(-1).file_id);
  const photoBytes = Buffer.from(await (await fetch(`${apiRoot}/file/bot${ALPHA}/${photoFile.file_path}`)).arrayBuffer());
  check("photo round trip", photoBytes.equals(PHOTO));
  const doc = await ctx.replyWithDocument(new InputFile(NOTES, "notes.txt"));
  check("document name", doc.document.file_name === "notes.txt", `(got ${doc.document.file_name})`);
  const docFile = await ctx.api.getFile(doc.document.file_id);
  const docBytes = Buffer.from(await (await fetch(`${apiRoot}/file/bot${ALPHA}/${docFile.file_path}`)).arrayBuffer());
  check("document round trip", docBytes.equals(NOTES));
  for (const [method, field] of [["replyWithVideo", "video"], ["replyWithAudio", "audio"], ["replyWithVoice", "voice"],
                                  ["replyWithAnimation", "animation"], ["replyWithSticker", "sticker"]]) {
    const sent = await ctx[method](new InputFile(Buffer.from(`${field} bytes`), `${field}.bin`));
    check(`${method} upload`, typeof sent[field]?.file_id === "string");
  }

  const caption = await ctx.api.editMessageCaption(chatId, photo.message_id, { caption: "a better picture" });
  check("editMessageCaption", caption.caption === "a better picture");
  const again = new InlineKeyboard().text("again", "again");
  const markup = await ctx.api.editMessageReplyMarkup(chatId, hello.message_id, { reply_markup: again });
  check("editMessageReplyMarkup", markup.reply_markup.inline_keyboard[0][0].text === "again");
  await expectError("message is not modified",
                    () => ctx.api.editMessageReplyMarkup(chatId, hello.message_id, { reply_markup: again }), 400,
                    "Bad Request: message is not modified");
  check("deleteMessage", (await ctx.api.deleteMessage(chatId, doc.message_id)) === true);
  await expectError("deleted twice", () => ctx.api.deleteMessage(chatId, doc.message_id), 400,
                    "Bad Request: message to delete not found");
  const chat = await ctx.getChat();
  check("getChat", chat.first_name === "Ann" && chat.username === "ann");
  check("getChatMember", (await ctx.getChatMember(42)).status === "member");

  await expectError("a user who never started the bot", () => ctx.api.sendMessage(43, "hi"), 403,
                    "Forbidden: bot can't initiate conversation with a user");
  await expectError("a user who blocked the bot", () => ctx.api.sendMessage(44, "hi"), 403,
                    "Forbidden: bot was blocked by the user");
  await expectError("text over 4096 characters", () => ctx.reply("x".repeat(4097)), 400,
                    "Bad Request: message is too long");
  await expectError("malformed HTML", () => ctx.reply("<i>it</b>", { parse_mode: "HTML" }), 400,
                    "Bad Request: can't parse entities: Unmatched end tag at byte offset 5, expected \"</i>\", found \"</b>\"");
  const migrated = await expectError("a migrated group", () => ctx.api.sendMessage(-5, "hi"), 400,
                                     "Bad Request: group chat was upgraded to a supergroup chat");
  check("migrate_to_chat_id", migrated?.parameters?.migrate_to_chat_id === -1000000000005);
  const beta = new Bot(BETA, { client: { apiRoot } });
  await expectError("another bot's file_id", () => beta.api.getFile(doc.document.file_id), 400,
                    "Bad Request: invalid file_id");
}

async function main() {
  const sim = await startSimulator(process.argv[2]);
  const apiRoot = sim.url;
  const handled = { start: false, callback: false };
  const bot = new Bot(ALPHA, { client: { apiRoot } });
  bot.command("start", async (ctx) => {
    try {
      await onStart(ctx, apiRoot);
    } catch (e) {
      check("start handler", false, `threw ${e}`);
    }
    handled.start = true;
  });
  bot.on("callback_query:data", async (ctx) => {
    check("callback data", ctx.callbackQuery.data === "ok");
    check("answerCallbackQuery", (await ctx.answerCallbackQuery({ text: "thanks" })) === true);
    await expectError("a callback query is answered once", () => ctx.answerCallbackQuery(), 400,
                      "Bad Request: query is too old and response timeout expired or query ID is invalid");
    handled.callback = true;
  });
  bot.catch((error) => check("no error escapes a handler", false, String(error.error)));

  // The standard loop. It runs until bot.stop(), which the last handler's end allows.
  const polling = bot.start({ timeout: 1 });
  const deadline = Date.now() + 30000;
  while (!(handled.start && handled.callback) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  check("start update handled", handled.start);
  check("callback update handled", handled.callback);
  await bot.stop();
  await polling;

  // 429 exactly as from Telegram: a fresh chat takes a burst of 3, then a
  // GrammyError 429 with retry_after in whole seconds and a Retry-After header.
  const beta = new Bot(BETA, { client: { apiRoot } });
  let sent = 0;
  let limited;
  for (let i = 0; i < 6 && !limited; i++) {
    try {
      await beta.api.sendMessage(42, `burst ${i}`);
      sent++;
    } catch (e) {
      limited = e;
    }
  }
  check("burst of 3 per chat", sent === 3, `(sent ${sent})`);
  check("429 after the burst", limited instanceof GrammyError && limited.error_code === 429, `(got ${limited})`);
  check("retry_after is whole seconds", limited?.parameters?.retry_after === 1, `(got ${limited?.parameters?.retry_after})`);
  check("description as Telegram's", limited?.description === "Too Many Requests: retry after 1");
  const raw = await fetch(`${apiRoot}/bot${BETA}/sendMessage`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ chat_id: 42, text: "once more" }),
  });
  check("Retry-After header", raw.status === 429 && raw.headers.get("retry-after") === "1",
        `(got ${raw.status} ${raw.headers.get("retry-after")})`);
  await sim.stop();

  for (const failure of failures) console.log("FAILED:", failure);
  console.log(`${passed} passed, ${failures.length} failed`);
  process.exit(failures.length === 0 && passed > 0 ? 0 : 1);
}

main().catch((e) => {
  console.log("FAILED:", e);
  process.exit(1);
});
