// The watch page: /{username}. Live: video and audio through livekit-client, title and
// description (live from the room metadata), viewer count, chat. Offline: the "Stream offline"
// state, polling the API until the stream goes live, and back to it when the creator leaves.
import {
  ConnectionState,
  DisconnectReason,
  type Participant,
  RemoteTrack,
  RemoteTrackPublication,
  Room,
  RoomEvent,
  Track,
  VideoQuality,
} from 'livekit-client';
import { api, ApiError, type ChatAccess, type Stream, type User, type ViewerToken } from './api';
import { fill, h, hue, initials, plural } from './dom';
import { link } from './nav';

// The shared contract (crates/api/src/types.rs, module `room`).
const ATTR_ROLE = 'streamit.role';
const CHAT_TOPIC = 'lk.chat';
const MODERATION_TOPIC = 'streamit.moderation';
const CHAT_MESSAGE_MAX = 500;
const SLOW_MODE_SECS_DEFAULT = 10;
const OFFLINE_POLL_MS = 3000;
// While live the room metadata carries title and chat settings; the API poll is the
// fallback (fast when the room has no metadata, e.g. an older backend).
const LIVE_POLL_MS = 30000;
const LIVE_POLL_NO_METADATA_MS = 5000;
const GUEST_NAME_KEY = 'streamit.guestName';
const CHAT_KEEP = 300;

type PageState = 'loading' | 'notfound' | 'offline' | 'connecting' | 'live' | 'removed' | 'error';
type Quality = 'auto' | 'high' | 'medium' | 'low';

interface RoomMetadata {
  title?: string;
  description?: string | null;
  isChatEnabled?: boolean;
  isChatDelayed?: boolean;
  isChatFollowersOnly?: boolean;
  slowModeSecs?: number;
}

interface ModerationEvent {
  type: 'deleteMessage' | 'deleteMessagesFrom';
  messageId?: string;
  identity?: string;
}

export class WatchPage {
  private stream: Stream | null = null;
  private room: Room | null = null;
  private grant: ViewerToken | null = null;
  private meta: RoomMetadata = {};
  private state: PageState = 'loading';
  private stopped = false;
  private pollTimer = 0;
  private countdownTimer = 0;
  private slowUntil = 0;
  private quality: Quality = 'auto';
  private following: boolean | null = null;
  private readonly aborter = new AbortController();
  private readonly messages = new Map<string, HTMLLIElement>();

  // Elements that change.
  private readonly section = h('section', { class: 'watch', 'data-state': 'loading', 'aria-busy': 'true' });
  private readonly player = h('div', { class: 'player' });
  private readonly video = h('video', { class: 'video', playsinline: true, autoplay: true, muted: false, 'aria-label': 'Live video', 'data-testid': 'video' });
  /** The creator's camera in a corner while their screen share fills the player. */
  private readonly inset = h('video', {
    class: 'video-inset',
    playsinline: true,
    autoplay: true,
    muted: true,
    hidden: true,
    'aria-label': 'Creator camera',
    'data-testid': 'video-inset',
  });
  /** The creator's video tracks by source; which goes where is `placeVideo`'s call. */
  private camera: { track: RemoteTrack; publication: RemoteTrackPublication } | null = null;
  private screen: { track: RemoteTrack; publication: RemoteTrackPublication } | null = null;
  private mainTrack: RemoteTrack | null = null;
  private insetTrack: RemoteTrack | null = null;
  private readonly overlay = h('div', { class: 'player-overlay' });
  private readonly playButton = h('button', { class: 'btn btn-primary btn-play', type: 'button', hidden: true }, 'Click to play with sound');
  private readonly audioBox = h('div', { hidden: true });
  private readonly title = h('h1', { class: 'watch-title', 'data-testid': 'title' });
  private readonly description = h('p', { class: 'watch-description', 'data-testid': 'description' });
  private readonly liveBadge = h('span', { class: 'badge badge-live', hidden: true }, 'LIVE');
  private readonly viewers = h('span', { class: 'viewer-count', 'data-testid': 'viewer-count', 'aria-live': 'polite' });
  private readonly resolution = h('span', { class: 'resolution muted', 'data-testid': 'resolution' });
  private readonly qualitySelect = h(
    'select',
    { id: 'quality', class: 'select', 'aria-label': 'Video quality', 'data-testid': 'quality' },
    h('option', { value: 'auto' }, 'Auto'),
    h('option', { value: 'high' }, 'High'),
    h('option', { value: 'medium' }, 'Medium'),
    h('option', { value: 'low' }, 'Low'),
  );
  private readonly qualityLabel = h('label', { class: 'quality-label', for: 'quality' }, 'Quality');
  private readonly followSlot = h('div', { class: 'follow-slot' });
  private readonly creatorRow = h('div', { class: 'creator-row' });
  private readonly chatLog = h('ol', { class: 'chat-log', 'aria-live': 'polite', 'aria-label': 'Chat messages', 'data-testid': 'chat-log' });
  private readonly chatRule = h('p', { class: 'chat-rule', 'data-testid': 'chat-rule', role: 'status' });
  private readonly chatInput = h('input', {
    id: 'chat-input',
    class: 'chat-input',
    type: 'text',
    maxlength: CHAT_MESSAGE_MAX,
    autocomplete: 'off',
    placeholder: 'Send a message',
    'aria-label': 'Chat message',
    'data-testid': 'chat-input',
  });
  private readonly chatSend = h('button', { class: 'btn btn-primary', type: 'submit', 'data-testid': 'chat-send' }, 'Send');
  private readonly chatForm = h('form', { class: 'chat-form', 'aria-label': 'Send a chat message' }, this.chatInput, this.chatSend);
  private readonly chatWho = h('div', { class: 'chat-who' });
  private readonly chatError = h('p', { class: 'chat-error', role: 'alert' });

  constructor(
    private readonly root: HTMLElement,
    private readonly username: string,
    private readonly user: User | null,
  ) {
    document.title = `${username} · StreamIt`;
    this.qualitySelect.addEventListener('change', () => {
      this.quality = this.qualitySelect.value as Quality;
      this.applyQuality();
    });
    this.chatForm.addEventListener('submit', (e) => {
      e.preventDefault();
      void this.sendChat();
    });
    this.playButton.addEventListener('click', () => void this.startPlayback());
    this.video.addEventListener('resize', () => this.showResolution());
    this.video.muted = false;
    this.inset.muted = true;
    this.layout();
    void this.load();
  }

  destroy(): void {
    this.stopped = true;
    this.aborter.abort();
    clearTimeout(this.pollTimer);
    clearInterval(this.countdownTimer);
    void this.room?.disconnect();
    this.room = null;
  }

  // --- layout -----------------------------------------------------------------------------

  private layout(): void {
    fill(this.player, this.video, this.inset, this.overlay, this.playButton, this.audioBox);
    const chat = h(
      'aside',
      { class: 'chat', 'aria-label': 'Chat' },
      h('div', { class: 'chat-head' }, h('h2', {}, 'Chat'), this.chatRuleBadge()),
      this.chatLog,
      h('div', { class: 'chat-foot' }, this.chatRule, this.chatForm, this.chatError, this.chatWho),
    );
    fill(
      this.section,
      h(
        'div',
        { class: 'watch-main' },
        this.player,
        h(
          'div',
          { class: 'player-bar' },
          this.liveBadge,
          this.viewers,
          h('span', { class: 'spacer' }),
          this.resolution,
          this.qualityLabel,
          this.qualitySelect,
        ),
        h('div', { class: 'watch-info' }, this.title, this.creatorRow, this.description),
      ),
      chat,
    );
    fill(this.root, this.section);
    this.setChatEnabled(false, 'Chat opens when the stream is live.');
  }

  private chatRuleBadge(): HTMLElement {
    return h('span', { class: 'chat-mode muted', 'data-testid': 'chat-mode' });
  }

  private setState(s: PageState): void {
    this.state = s;
    this.section.dataset.state = s;
    this.section.setAttribute('aria-busy', String(s === 'loading' || s === 'connecting'));
    this.liveBadge.hidden = s !== 'live';
    for (const el of [this.qualitySelect, this.qualityLabel]) el.hidden = s !== 'live';
    if (s !== 'live') {
      this.playButton.hidden = true;
      this.resolution.textContent = '';
    }
  }

  private renderStreamInfo(): void {
    const s = this.stream;
    if (!s) return;
    const name = s.user.displayName || s.user.username;
    const title = this.meta.title ?? s.title;
    const description = this.meta.description !== undefined ? this.meta.description : s.description;
    this.title.textContent = title;
    this.description.textContent = description ?? '';
    this.description.hidden = !description;
    document.title = `${title} · ${name} · StreamIt`;
    const avatar = h('span', { class: 'avatar avatar-lg', 'aria-hidden': 'true' }, initials(name));
    avatar.style.setProperty('--tone', String(hue(s.user.username)));
    fill(
      this.creatorRow,
      avatar,
      h('div', { class: 'creator-text' }, h('span', { class: 'creator-name' }, name), h('span', { class: 'muted' }, `@${s.user.username}`)),
      this.followSlot,
    );
    this.renderFollow();
  }

  private renderFollow(): void {
    const s = this.stream;
    if (!s) return;
    if (!this.user) {
      fill(this.followSlot, link(`/login?next=${encodeURIComponent(location.pathname)}`, { class: 'btn btn-primary' }, 'Follow'));
      return;
    }
    if (this.user.id === s.userId) {
      fill(this.followSlot, h('span', { class: 'muted' }, 'Your channel'));
      return;
    }
    const following = this.following === true;
    const button = h(
      'button',
      { class: following ? 'btn btn-secondary' : 'btn btn-primary', type: 'button', 'aria-pressed': String(following), 'data-testid': 'follow' },
      following ? 'Following' : 'Follow',
    );
    button.addEventListener('click', async () => {
      button.disabled = true;
      try {
        const r = following ? await api.unfollow(s.user.username) : await api.follow(s.user.username);
        this.following = r.following;
        this.renderFollow();
        // Followers-only chat: a new follower needs a token that says so.
        if (this.state === 'live' && this.meta.isChatFollowersOnly) await this.rejoin();
      } catch (e) {
        this.chatError.textContent = (e as Error).message;
        button.disabled = false;
      }
    });
    fill(this.followSlot, button);
  }

  private showOffline(): void {
    this.showCreatorCard('offline', 'Stream offline', (name) => `${name} is not live right now. This page starts playing by itself when they go live.`);
    this.viewers.textContent = '';
    this.viewers.dataset.count = '';
  }

  private showCameraOff(): void {
    this.showCreatorCard('camera-off', 'Camera is off', (name) => `${name} turned the camera off. You can still hear them and chat.`);
  }

  /** The creator's avatar, a heading and a line about them, in place of the picture. */
  private showCreatorCard(testid: string, heading: string, text: (name: string) => string): void {
    const s = this.stream;
    const name = s ? s.user.displayName || s.user.username : this.username;
    const avatar = h('span', { class: 'avatar avatar-xl', 'aria-hidden': 'true' }, initials(name));
    avatar.style.setProperty('--tone', String(hue(this.username)));
    fill(
      this.overlay,
      h('div', { class: 'offline', 'data-testid': testid }, avatar, h('h2', {}, heading), h('p', { class: 'muted' }, text(name))),
    );
    this.overlay.hidden = false;
    this.video.hidden = true;
  }

  private showMessage(heading: string, text: string): void {
    fill(this.overlay, h('div', { class: 'offline' }, h('h2', {}, heading), h('p', { class: 'muted' }, text)));
    this.overlay.hidden = false;
    this.video.hidden = true;
  }

  private showVideo(): void {
    this.video.hidden = false;
    this.overlay.hidden = true;
  }

  private showWaiting(text: string): void {
    fill(this.overlay, h('div', { class: 'waiting' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), h('p', {}, text)));
    this.overlay.hidden = false;
  }

  // --- lifecycle ----------------------------------------------------------------------------

  private async load(): Promise<void> {
    try {
      this.stream = await api.stream(this.username, this.aborter.signal);
    } catch (e) {
      if (this.stopped) return;
      if (e instanceof ApiError && e.status === 404) {
        this.setState('notfound');
        fill(
          this.root,
          h(
            'section',
            { class: 'empty', 'data-state': 'notfound' },
            h('h1', {}, 'Channel not found'),
            h('p', { class: 'muted' }, `There is no StreamIt channel called “${this.username}”.`),
            link('/', { class: 'btn btn-primary' }, 'See who is live'),
          ),
        );
        return;
      }
      this.setState('error');
      this.showMessage('Cannot load this stream', (e as Error).message);
      this.schedulePoll(OFFLINE_POLL_MS);
      return;
    }
    this.renderStreamInfo();
    if (this.user && this.user.id !== this.stream.userId) void this.loadFollowing();
    if (this.stream.isLive) await this.join();
    else this.goOffline();
  }

  private async loadFollowing(): Promise<void> {
    try {
      const live = await api.following();
      if (this.stream && live.some((s) => s.userId === this.stream!.userId)) this.following = true;
      else if (this.stream?.isLive) this.following = false;
      this.renderFollow();
    } catch {
      // Unknown: the button offers Follow (idempotent on the server).
    }
  }

  private goOffline(): void {
    const room = this.room;
    this.room = null;
    void room?.disconnect();
    this.clearVideo();
    this.setState('offline');
    this.showOffline();
    this.setChatEnabled(false, 'Chat opens when the stream is live.');
    this.schedulePoll(OFFLINE_POLL_MS);
  }

  private schedulePoll(ms: number): void {
    clearTimeout(this.pollTimer);
    if (this.stopped) return;
    this.pollTimer = window.setTimeout(() => void this.poll(), ms);
  }

  /** Offline: every 3 s, is it live now? Live: refresh what the room metadata may miss. */
  private async poll(): Promise<void> {
    if (this.stopped) return;
    try {
      const s = await api.stream(this.username, this.aborter.signal);
      if (this.stopped) return;
      this.stream = s;
      if (this.state === 'live' && !s.isLive && !this.creatorPresent()) {
        // Ended while this page missed the creator leaving.
        this.goOffline();
        return;
      }
      if (this.state === 'live' || this.state === 'connecting') {
        this.renderTitleOnly();
        this.schedulePoll(this.room?.metadata ? LIVE_POLL_MS : LIVE_POLL_NO_METADATA_MS);
        return;
      }
      this.renderStreamInfo();
      if (s.isLive && this.state !== 'removed') {
        await this.join();
        return;
      }
    } catch (e) {
      if ((e as Error).name === 'AbortError') return;
    }
    if (this.state !== 'live' && this.state !== 'connecting') this.schedulePoll(OFFLINE_POLL_MS);
  }

  private renderTitleOnly(): void {
    const s = this.stream;
    if (!s) return;
    // The room metadata is newer when present; the API is the fallback.
    if (!this.room?.metadata) {
      this.title.textContent = s.title;
      this.description.textContent = s.description ?? '';
      this.description.hidden = !s.description;
    }
  }

  private guestName(): string | undefined {
    return localStorage.getItem(GUEST_NAME_KEY)?.trim() || undefined;
  }

  private async join(): Promise<void> {
    const s = this.stream;
    if (!s || this.stopped) return;
    this.setState('connecting');
    this.showWaiting('Joining the stream…');
    let grant: ViewerToken;
    const asGuest = !this.user || this.user.id === s.userId;
    try {
      grant = await api.viewerToken(s.userId, asGuest ? (this.guestName() ?? 'Guest') : undefined);
    } catch (e) {
      if (this.stopped) return;
      if (e instanceof ApiError && e.status === 409) {
        // The stream went offline between the two calls (or has not started yet).
        this.goOffline();
        return;
      }
      if (e instanceof ApiError && e.status === 403) {
        this.setState('removed');
        this.showMessage('You cannot watch this stream', e.message);
        return;
      }
      this.setState('error');
      this.showMessage('Cannot join the stream', (e as Error).message);
      this.schedulePoll(OFFLINE_POLL_MS);
      return;
    }
    this.grant = grant;
    const room = new Room({ adaptiveStream: true, dynacast: true });
    this.room = room;
    this.wire(room);
    try {
      await room.connect(grant.wsUrl, grant.token);
    } catch (e) {
      if (this.stopped || this.room !== room) return;
      this.room = null;
      this.setState('error');
      this.showMessage('Cannot connect to the stream', (e as Error).message);
      this.schedulePoll(OFFLINE_POLL_MS);
      return;
    }
    if (this.stopped || this.room !== room) {
      void room.disconnect();
      return;
    }
    this.meta = parseMeta(room.metadata) ?? {};
    this.renderStreamInfo();
    this.setState('live');
    if (!this.video.srcObject) this.showWaiting(this.creatorPresent() ? 'Waiting for video…' : 'Waiting for the creator…');
    this.updatePlayback();
    this.updateViewers();
    this.updateChatRule();
    this.renderChatWho();
    this.schedulePoll(room.metadata ? LIVE_POLL_MS : LIVE_POLL_NO_METADATA_MS);
  }

  private async rejoin(): Promise<void> {
    const room = this.room;
    this.room = null;
    await room?.disconnect();
    this.clearVideo();
    await this.join();
  }

  private wire(room: Room): void {
    const mine = () => this.room === room;
    room
      .on(RoomEvent.TrackSubscribed, (track, publication) => {
        if (mine()) this.attach(track, publication);
      })
      .on(RoomEvent.TrackUnsubscribed, (track) => {
        track.detach();
        if (!mine() || track.kind !== Track.Kind.Video) return;
        if (this.camera?.track === track) this.camera = null;
        if (this.screen?.track === track) this.screen = null;
        if (this.camera || this.screen) {
          this.placeVideo();
        } else {
          this.clearVideo();
          this.showWaiting('Waiting for video…');
        }
      })
      // Camera off: the creator's track is muted and no frames come, so say so instead of
      // holding the last frame (or drop the corner picture while a screen share shows); the
      // picture comes back with the unmute's key frame.
      .on(RoomEvent.TrackMuted, (publication, participant) => {
        if (mine() && publication.kind === Track.Kind.Video && this.isCreator(participant)) this.placeVideo();
      })
      .on(RoomEvent.TrackUnmuted, (publication, participant) => {
        if (mine() && publication.kind === Track.Kind.Video && this.isCreator(participant)) this.placeVideo();
      })
      .on(RoomEvent.ParticipantConnected, () => mine() && this.updateViewers())
      .on(RoomEvent.ParticipantDisconnected, (p) => {
        if (!mine()) return;
        if (this.isCreator(p)) {
          // The creator left: the stream is over (or restarting; the poll brings it back).
          this.goOffline();
          return;
        }
        this.updateViewers();
      })
      .on(RoomEvent.ParticipantAttributesChanged, () => mine() && this.updateViewers())
      .on(RoomEvent.RoomMetadataChanged, (metadata) => {
        if (!mine()) return;
        const m = parseMeta(metadata);
        if (m) {
          this.meta = m;
          this.renderStreamInfo();
          this.updateChatRule();
        }
      })
      .on(RoomEvent.ParticipantPermissionsChanged, (_prev, p) => {
        if (mine() && p === room.localParticipant) this.updateChatRule();
      })
      .on(RoomEvent.AudioPlaybackStatusChanged, () => mine() && this.updatePlayback())
      .on(RoomEvent.VideoPlaybackStatusChanged, () => mine() && this.updatePlayback())
      .on(RoomEvent.DataReceived, (payload, participant, _kind, topic) => {
        if (mine() && topic === MODERATION_TOPIC && participant && this.isCreator(participant)) this.moderate(payload);
      })
      .on(RoomEvent.Disconnected, (reason) => {
        if (!mine()) return;
        this.room = null;
        if (reason === DisconnectReason.PARTICIPANT_REMOVED) {
          this.clearVideo();
          this.setState('removed');
          this.showMessage('You were removed from this stream', 'The creator removed you from this stream.');
          this.setChatEnabled(false, 'You cannot chat in this stream.');
          return;
        }
        this.goOffline();
      });
    room.registerTextStreamHandler(CHAT_TOPIC, (reader, { identity }) => {
      void reader.readAll().then((text) => {
        if (!mine()) return;
        const p = room.remoteParticipants.get(identity);
        this.addMessage(reader.info.id, identity, p?.name || identity, text, p ? this.roleOf(p) : '');
      });
    });
  }

  private attach(track: RemoteTrack, publication: RemoteTrackPublication): void {
    if (track.kind === Track.Kind.Video) {
      if (publication.source === Track.Source.ScreenShare) this.screen = { track, publication };
      else this.camera = { track, publication };
      this.placeVideo();
    } else if (track.kind === Track.Kind.Audio) {
      const el = track.attach();
      this.audioBox.append(el);
    }
    this.updatePlayback();
  }

  /**
   * A screen share fills the player with the camera in a corner, as in a studio layout;
   * without one the camera fills it. Tracks move between the two elements only when the
   * layout changes, so a mute or a quality change does not restart playback.
   */
  private placeVideo(): void {
    const cameraOn = this.camera && !this.camera.publication.isMuted ? this.camera : null;
    const main = this.screen ?? this.camera;
    const inset = this.screen ? cameraOn : null;
    this.show(this.video, main?.track ?? null, 'main');
    this.show(this.inset, inset?.track ?? null, 'inset');
    this.inset.hidden = !inset;
    if (!main) return;
    if (main === this.camera && !cameraOn) this.showCameraOff();
    else this.showVideo();
    this.applyQuality();
  }

  private show(el: HTMLVideoElement, track: RemoteTrack | null, slot: 'main' | 'inset'): void {
    const current = slot === 'main' ? this.mainTrack : this.insetTrack;
    if (current === track) return;
    current?.detach(el);
    if (track) track.attach(el);
    else el.srcObject = null;
    if (slot === 'main') this.mainTrack = track;
    else this.insetTrack = track;
  }

  private clearVideo(): void {
    this.camera = null;
    this.screen = null;
    this.mainTrack = null;
    this.insetTrack = null;
    this.video.srcObject = null;
    this.inset.srcObject = null;
    this.inset.hidden = true;
    this.audioBox.replaceChildren();
    this.resolution.textContent = '';
  }

  /**
   * livekit-client (2.23) takes setVideoQuality as the highest layer wanted and, with
   * adaptiveStream, still picks a smaller layer when the player is smaller than the layer.
   * So Auto = "up to high, as the player size allows" and Low/Medium/High fix the ceiling.
   * The camera in the corner needs no more than its low layer.
   */
  private applyQuality(): void {
    const q = {
      auto: VideoQuality.HIGH,
      high: VideoQuality.HIGH,
      medium: VideoQuality.MEDIUM,
      low: VideoQuality.LOW,
    }[this.quality];
    this.screen?.publication.setVideoQuality(q);
    this.camera?.publication.setVideoQuality(this.screen ? VideoQuality.LOW : q);
  }

  private showResolution(): void {
    const w = this.video.videoWidth;
    const hgt = this.video.videoHeight;
    this.resolution.textContent = w && hgt ? `${hgt}p` : '';
    this.resolution.title = w && hgt ? `Receiving ${w}×${hgt}` : '';
  }

  private updatePlayback(): void {
    const room = this.room;
    if (!room) return;
    const blocked = !room.canPlaybackAudio || !room.canPlaybackVideo;
    this.playButton.hidden = !blocked;
    this.playButton.textContent = room.canPlaybackVideo ? 'Click to unmute' : 'Click to play';
  }

  private async startPlayback(): Promise<void> {
    const room = this.room;
    if (!room) return;
    try {
      await room.startAudio();
      if (!room.canPlaybackVideo) await room.startVideo();
      await this.video.play().catch(() => undefined);
    } finally {
      this.updatePlayback();
    }
  }

  // --- participants ---------------------------------------------------------------------------

  private roleOf(p: Participant): string {
    const role = p.attributes?.[ATTR_ROLE];
    if (role) return role;
    // Older backends set no role attribute: the room is named after the creator's user id,
    // which is the creator's identity, and guests get `guest-…` identities.
    if (this.stream && p.identity === this.stream.userId) return 'creator';
    if (p.identity.startsWith('guest-')) return 'guest';
    return 'viewer';
  }

  private isCreator(p: Participant): boolean {
    return this.roleOf(p) === 'creator';
  }

  private creatorPresent(): boolean {
    for (const p of this.room?.remoteParticipants.values() ?? []) if (this.isCreator(p)) return true;
    return false;
  }

  /** Viewers in the room: remote viewers and guests, plus this page. */
  private updateViewers(): void {
    const room = this.room;
    if (!room || room.state !== ConnectionState.Connected) return;
    let n = 1;
    for (const p of room.remoteParticipants.values()) {
      const role = this.roleOf(p);
      if (role === 'viewer' || role === 'guest') n += 1;
    }
    this.viewers.dataset.count = String(n);
    this.viewers.textContent = plural(n, 'viewer', 'viewers');
  }

  // --- chat ---------------------------------------------------------------------------------

  private addMessage(id: string, identity: string, name: string, text: string, role: string, own = false): void {
    if (this.messages.has(id)) return;
    const badge =
      role === 'creator'
        ? h('span', { class: 'chat-badge chat-badge-creator', 'data-badge': 'creator' }, 'Creator')
        : role === 'guest'
          ? h('span', { class: 'chat-badge chat-badge-guest', 'data-badge': 'guest' }, 'Guest')
          : null;
    const nameEl = h('span', { class: 'chat-name', 'data-testid': 'chat-name' }, name);
    nameEl.style.setProperty('--tone', String(hue(identity)));
    const li = h(
      'li',
      {
        class: own ? 'chat-line own' : 'chat-line',
        'data-chat-line': true,
        'data-message-id': id,
        'data-identity': identity,
        'data-role': role,
      },
      badge,
      nameEl,
      h('span', { class: 'chat-text', 'data-testid': 'chat-text' }, text.slice(0, CHAT_MESSAGE_MAX)),
    );
    const atBottom = this.chatLog.scrollHeight - this.chatLog.scrollTop - this.chatLog.clientHeight < 40;
    this.chatLog.append(li);
    this.messages.set(id, li);
    while (this.chatLog.children.length > CHAT_KEEP) {
      const first = this.chatLog.firstElementChild as HTMLLIElement;
      this.messages.delete(first.dataset.messageId ?? '');
      first.remove();
    }
    if (atBottom || own) this.chatLog.scrollTop = this.chatLog.scrollHeight;
  }

  /** Moderation events count only from the creator (checked by the caller). */
  private moderate(payload: Uint8Array): void {
    let ev: ModerationEvent;
    try {
      ev = JSON.parse(new TextDecoder().decode(payload));
    } catch {
      return;
    }
    if (ev.type === 'deleteMessage' && ev.messageId) {
      this.messages.get(ev.messageId)?.remove();
      this.messages.delete(ev.messageId);
    } else if (ev.type === 'deleteMessagesFrom' && ev.identity) {
      for (const [id, li] of this.messages) {
        if (li.dataset.identity === ev.identity) {
          li.remove();
          this.messages.delete(id);
        }
      }
    }
  }

  private chatSettings(): { enabled: boolean; delayed: boolean; followersOnly: boolean; slowSecs: number } {
    const s = this.stream;
    const m = this.meta;
    return {
      enabled: m.isChatEnabled ?? s?.isChatEnabled ?? true,
      delayed: m.isChatDelayed ?? s?.isChatDelayed ?? false,
      followersOnly: m.isChatFollowersOnly ?? s?.isChatFollowersOnly ?? false,
      slowSecs: m.slowModeSecs || this.grant?.chat?.slowModeSecs || SLOW_MODE_SECS_DEFAULT,
    };
  }

  /**
   * What LiveKit allows is the truth (`canPublishData`, changed live by the backend); the
   * settings and the token's `chat` only say why.
   */
  private updateChatRule(): void {
    const room = this.room;
    if (!room || this.state !== 'live') return;
    const settings = this.chatSettings();
    const chat: ChatAccess | undefined = this.grant?.role ? this.grant.chat : undefined;
    const perm = room.localParticipant.permissions;
    const canPublish = perm ? perm.canPublishData : (chat?.canSend ?? true);
    const mode = this.section.querySelector('[data-testid=chat-mode]');
    if (mode) mode.textContent = settings.followersOnly ? 'Followers only' : settings.delayed ? `Slow mode · ${settings.slowSecs} s` : '';
    if (!settings.enabled) return this.setChatEnabled(false, 'Chat is turned off for this stream.');
    if (!canPublish) {
      const until = chat?.timedOutUntil;
      let why: string;
      if (until && until > Date.now()) why = `You are timed out until ${new Date(until).toLocaleTimeString()}.`;
      else if (settings.followersOnly && (this.isGuest() || this.following !== true)) why = 'Chat is for followers only.';
      else why = chat?.reason || 'You cannot send messages right now.';
      return this.setChatEnabled(false, why);
    }
    this.setChatEnabled(true, settings.delayed ? `Slow mode: one message every ${settings.slowSecs} s.` : '');
    this.tickSlowMode();
  }

  private isGuest(): boolean {
    return !this.user || this.grant?.role === 'guest' || (this.grant?.identity.startsWith('guest-') ?? true);
  }

  private setChatEnabled(enabled: boolean, rule: string): void {
    this.chatForm.hidden = !enabled;
    this.chatInput.disabled = !enabled;
    this.chatSend.disabled = !enabled;
    this.chatRule.textContent = rule;
    this.chatRule.hidden = !rule;
    this.chatRule.classList.toggle('chat-rule-blocked', !enabled);
    this.section.dataset.chat = enabled ? 'open' : 'closed';
  }

  private tickSlowMode(): void {
    clearInterval(this.countdownTimer);
    const left = () => Math.ceil((this.slowUntil - Date.now()) / 1000);
    const render = () => {
      const secs = left();
      const waiting = secs > 0 && !this.chatForm.hidden;
      this.chatInput.disabled = waiting || this.chatForm.hidden;
      this.chatSend.disabled = this.chatInput.disabled;
      this.chatSend.textContent = waiting ? `${secs} s` : 'Send';
      this.chatInput.placeholder = waiting ? `Slow mode: wait ${secs} s` : 'Send a message';
      if (!waiting) clearInterval(this.countdownTimer);
    };
    render();
    if (left() > 0) this.countdownTimer = window.setInterval(render, 250);
  }

  private async sendChat(): Promise<void> {
    const room = this.room;
    const text = this.chatInput.value.trim().slice(0, CHAT_MESSAGE_MAX);
    if (!room || !text || this.chatInput.disabled) return;
    this.chatError.textContent = '';
    this.chatInput.disabled = true;
    try {
      const info = await room.localParticipant.sendText(text, { topic: CHAT_TOPIC });
      const me = room.localParticipant;
      this.addMessage(info.id, me.identity, me.name || this.grant?.name || 'You', text, this.grant?.role || this.roleOf(me), true);
      this.chatInput.value = '';
      const settings = this.chatSettings();
      if (settings.delayed) this.slowUntil = Date.now() + settings.slowSecs * 1000;
    } catch (e) {
      this.chatError.textContent = `Not sent: ${(e as Error).message}`;
    } finally {
      this.chatInput.disabled = false;
      this.updateChatRule();
      if (!this.chatInput.disabled) this.chatInput.focus();
    }
  }

  /** Who this page chats as; guests may pick a name (a new token, so a quick rejoin). */
  private renderChatWho(): void {
    const g = this.grant;
    if (!g) return fill(this.chatWho);
    if (!this.isGuest()) {
      return fill(this.chatWho, h('span', { class: 'muted' }, 'Chatting as '), h('strong', {}, g.name));
    }
    const change = h('button', { class: 'link', type: 'button', 'data-testid': 'guest-name-change' }, 'Change name');
    change.addEventListener('click', () => {
      const input = h('input', { id: 'guest-name', class: 'chat-input', maxlength: 64, value: this.guestName() ?? '', placeholder: 'Your name', 'data-testid': 'guest-name' });
      const form = h(
        'form',
        { class: 'guest-form' },
        h('label', { for: 'guest-name', class: 'sr-only' }, 'Guest name'),
        input,
        h('button', { class: 'btn btn-secondary', type: 'submit' }, 'Use name'),
      );
      form.addEventListener('submit', (e) => {
        e.preventDefault();
        const name = input.value.trim();
        if (name) localStorage.setItem(GUEST_NAME_KEY, name);
        else localStorage.removeItem(GUEST_NAME_KEY);
        void this.rejoin();
      });
      fill(this.chatWho, form);
      input.focus();
    });
    fill(
      this.chatWho,
      h('span', { class: 'muted' }, 'Watching as guest '),
      h('strong', { 'data-testid': 'guest-name-current' }, g.name),
      ' · ',
      change,
      ' · ',
      link(`/login?next=${encodeURIComponent(location.pathname)}`, { class: 'link' }, 'Log in'),
    );
  }
}

function parseMeta(raw: string | undefined): RoomMetadata | null {
  if (!raw) return null;
  try {
    const m = JSON.parse(raw);
    return m && typeof m === 'object' ? (m as RoomMetadata) : null;
  } catch {
    return null;
  }
}
